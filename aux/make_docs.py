#!/usr/bin/env python3
"""Regenerate the generated sections of README.md from the code, so the docs never drift.

Sections live between marker comments in README.md::

    <!-- BEGIN generated: NAME -->
    ...
    <!-- END generated: NAME -->

and are rebuilt from:

- ``options``: every ``balrog-*`` command of ``pyproject.toml`` [project.scripts], from its
  cli module's ``build_parser().format_help()`` (at a fixed width of 100 columns);
- ``config-keys``: ``balrog_runner.campaign.config_keys.RUN_KEYS`` / ``BALROG_KEYS`` / ``DB_KEYS``
  (default, type, meaning; required, hidden and dangerous keys marked);
- ``site-setups``: ``site-setups/*/config.py`` (docstring and the values CustomConfig sets)
  and ``source.sh``;
- ``system-packages``: ``.ci/apt-packages.txt``;
- ``exit-codes``: ``balrog_runner.errors.EXIT_CODES`` and ``SEVERITY``.

Usage::

    python aux/make_docs.py            # rewrite README.md in place
    python aux/make_docs.py --check    # exit 1 (and name the sections) when README.md is stale
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import os
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Help texts are wrapped at this many columns whatever the terminal.
HELP_COLUMNS = 100
MARKER_RE = re.compile(
    r"(?P<begin><!-- BEGIN generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<end><!-- END generated: (?P=name) -->)",
    re.S,
)


# ----------------------------------------------------------------------------- options


def commands(repo: Path = REPO) -> list[tuple[str, str]]:
    """(command, module) pairs from pyproject.toml's [project.scripts], in file order."""
    data = tomllib.loads((repo / "pyproject.toml").read_text())
    out = []
    for name, target in data["project"]["scripts"].items():
        module = target.split(":", 1)[0]
        out.append((name, module))
    return out


def command_help(module: str) -> str:
    """``build_parser().format_help()`` of a cli module, at :data:`HELP_COLUMNS` columns."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)
    try:
        mod = importlib.import_module(module)
        return mod.build_parser().format_help().rstrip() + "\n"
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def section_options(repo: Path = REPO) -> str:
    cmds = commands(repo)
    parts = ["Generated from each command's argparse parser (`aux/make_docs.py`); "
             "`<command> --help` prints the same.\n"]
    parts.append("Commands: " + ", ".join(f"[`{n}`](#{n})" for n, _ in cmds) + ".\n")
    for name, module in cmds:
        parts.append(f"#### {name}\n\n```text\n{command_help(module)}```\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- config keys


def _md(text: str) -> str:
    """Escape plain text for a Markdown table cell (GitHub flavour).

    ``<dbname>`` would be eaten as an HTML tag, ``nodes*npersubjob`` or ``_sim/_nosim``
    could turn into emphasis; intraword underscores (``fetch_source``) are safe as they are.
    """
    text = text.replace("\n", " ").replace("|", "\\|").replace("*", "\\*")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def render_default(name: str, key) -> str:
    """A key's default as shown in the docs: machine-independent paths for computed defaults."""
    from balrog_runner.campaign import config_keys

    value = key.make_default()
    if callable(key.default) and isinstance(value, str):
        cdir = str(config_keys.config_dir())
        if value.startswith(cdir + os.sep):
            return f"`config/{value[len(cdir) + 1:]}` (shipped, absolute path)"
        if name == "balrog-run":
            return "`balrog-run` beside the running python when present, else `balrog-run` on PATH"
        return f"`{value}` (computed)"
    return f"`{value!r}`"


def section_config_keys() -> str:
    from balrog_runner.campaign import config_keys

    out = [
        "Generated from `balrog_runner.campaign.config_keys` (`aux/make_docs.py`); `balrog-jobs --list-keys` "
        "prints the same. Flags: **required** (no usable default), *hidden* (keep the default "
        "unless you know why), **DANGEROUS** (can destroy data). Paths get `~` and `$VARS` "
        "expanded and are made absolute when the config is loaded.\n",
    ]
    titles = {"run": "`run` — the campaign, resources, programs, downloads",
              "balrog": "`balrog` — injection",
              "db": "`db` — the results database"}
    for section, table in config_keys.SECTIONS.items():
        out.append(f"#### {titles.get(section, section)}\n")
        out.append("| key | default | type | meaning |\n|---|---|---|---|")
        for name, key in table.items():
            flags = []
            if key.required:
                flags.append("**required**")
            if key.hidden:
                flags.append("*hidden*")
            if key.dangerous:
                flags.append("**DANGEROUS**")
            kind = key.kind + (" or None" if key.optional else "")
            label = f"`{name}`" + (" " + " ".join(flags) if flags else "")
            default = render_default(name, key).replace("|", "\\|")
            out.append(f"| {label} | {default} | {kind} | {_md(key.help)} |")
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- site setups


def _custom_config_body(tree: ast.Module, source: str) -> str:
    """The body of ``CustomConfig``, verbatim (comments kept), dedented."""
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "CustomConfig":
            body = lines[node.body[0].lineno - 1 : node.body[-1].end_lineno]
            return textwrap.dedent("\n".join(body))
    return ""


def _docstring_markdown(tree: ast.Module, source: str) -> str:
    """A module docstring as Markdown: ``x`` -> `x`, ``::`` / indented blocks -> bash fences.

    Read from the source text, not ``ast.get_docstring``, so a backslash line continuation in
    a shell example stays a backslash.
    """
    node = tree.body[0] if tree.body else None
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
        return ""
    raw = ast.get_source_segment(source, node).strip()
    raw = re.sub(r'^[rRbBuU]*("""|\'\'\')', "", raw)
    raw = re.sub(r'("""|\'\'\')$', "", raw)
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            out.extend(["", "```bash", *textwrap.dedent("\n".join(block)).strip("\n").splitlines(), "```", ""])
            block.clear()

    for line in textwrap.dedent(raw).strip("\n").splitlines():
        if line.startswith("    ") or (block and not line.strip()):
            block.append(line)
            continue
        flush()
        line = line.replace("``", "`")
        out.append(line[:-2] + ":" if line.endswith("::") else line)
    flush()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def section_site_setups(repo: Path = REPO) -> str:
    out = ["Generated from `site-setups/*/` (`aux/make_docs.py`). Copy one, edit the paths, tiles "
           "and account, and pass both files to `balrog-jobs --config ... --source ...`. "
           "`$BALROG_CAMPAIGN_DIR` moves the campaign's directories.\n"]
    for d in sorted(p for p in (repo / "site-setups").iterdir() if p.is_dir()):
        cfg = d / "config.py"
        src = d / "source.sh"
        out.append(f"#### `site-setups/{d.name}/`\n")
        if cfg.is_file():
            text = cfg.read_text()
            tree = ast.parse(text)
            doc = _docstring_markdown(tree, text)
            if doc:
                out.append(doc)
            body = _custom_config_body(tree, text)
            if body:
                out.append("`config.py`, `CustomConfig(run, balrog, db, tiles)`:\n\n```python\n" + body + "\n```\n")
        if src.is_file():
            out.append("`source.sh`:\n\n```bash\n" + src.read_text().rstrip() + "\n```\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------- system packages


def section_system_packages(repo: Path = REPO) -> str:
    pkgs = []
    for line in (repo / ".ci" / "apt-packages.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkgs.append(line)
    return (
        "Generated from `.ci/apt-packages.txt` (`aux/make_docs.py`); `make setup` installs them "
        "with `.ci/install-system-deps.sh`:\n\n```bash\nsudo apt-get install " + " ".join(pkgs) + "\n```\n"
    )


# ----------------------------------------------------------------------------- exit codes


def section_exit_codes() -> str:
    """The exit-code table from ``balrog_runner.errors.EXIT_CODES`` and the order of ``SEVERITY``."""
    from balrog_runner import errors

    rows = "".join(f"| {code} | {_md(meaning)} |\n" for code, (_name, meaning) in sorted(errors.EXIT_CODES.items()))
    order = " > ".join(str(c) for c in errors.SEVERITY if c != errors.EXIT_OK)
    return (
        "Exit codes (every `balrog-*` command; generated from `balrog_runner/errors.py`, and every "
        "command's `--help` lists its own):\n\n| code | meaning |\n|---|---|\n" + rows
        + f"\nA command that runs many units (`balrog-run`: tiles and realizations; `balrog-jobs --submit` "
        f"or `--run-local` with the local scheduler: subjobs) exits with the worst of its units' codes, in "
        f"the order {order}: first what a resubmission alone cannot cure (the input, the programs, the disk), "
        "then an unexplained failure, then what a later retry usually cures (the archive, the database). "
        "Its end-of-run log names each failed tile's reason and kind "
        "(`ERROR ... tile DES0002+0001: ... [exit 6: network or archive]`).\n"
    )


SECTIONS: dict[str, Callable[[], str]] = {
    "options": section_options,
    "config-keys": section_config_keys,
    "site-setups": section_site_setups,
    "system-packages": section_system_packages,
    "exit-codes": section_exit_codes,
}


# ----------------------------------------------------------------------------- rewrite


def render(text: str, sections: dict[str, Callable[[], str]] = SECTIONS) -> tuple[str, list[str]]:
    """``text`` with every generated section rebuilt; also the names of the sections found."""
    found: list[str] = []
    cache: dict[str, str] = {}

    def repl(m: re.Match) -> str:
        name = m["name"]
        if name not in sections:
            raise SystemExit(f"make_docs: unknown generated section {name!r} (known: {', '.join(sections)})")
        found.append(name)
        if name not in cache:
            cache[name] = sections[name]().rstrip() + "\n"
        return m["begin"] + cache[name] + m["end"]

    return MARKER_RE.sub(repl, text), found


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make_docs.py",
        description="Rewrite the generated sections of README.md (command options, config keys, "
        "site setups, system packages) from the code.",
    )
    p.add_argument("--readme", default=str(REPO / "README.md"), help="file to update (default: the repository's README.md)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a generated section is out of date (shows a diff)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = Path(args.readme)
    old = path.read_text()
    new, found = render(old)
    missing = [n for n in SECTIONS if n not in found]
    if missing:
        print(f"make_docs: {path} lacks the generated sections {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.check:
        if new != old:
            diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), "generated")
            sys.stderr.writelines(list(diff)[:80])
            print(f"make_docs: {path} is out of date; run: python aux/make_docs.py", file=sys.stderr)
            return 1
        print(f"make_docs: {path} is up to date")
        return 0
    if new != old:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new)
        tmp.replace(path)
        print(f"make_docs: updated {path}")
    else:
        print(f"make_docs: {path} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""README.md: the two first commands, and the generated sections match the code (aux/make_docs.py)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAKE_DOCS = REPO / "aux" / "make_docs.py"

DEMO_LINE = "make demo    # the whole Balrog chain on a small synthetic DES survey (installs what it needs)"
TEST_LINE = "make test    # the test suite (installs what it needs)"


@pytest.fixture(scope="module")
def make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", MAKE_DOCS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


def test_readme_starts_with_the_two_commands(readme):
    lines = readme.splitlines()
    assert lines[0].startswith("# ")
    body = [ln for ln in lines[1:] if ln.strip()][:4]
    assert body == ["```", DEMO_LINE, TEST_LINE, "```"]


def test_generated_sections_are_up_to_date():
    """Fails after a CLI option, config key, site setup or apt package changed: run aux/make_docs.py."""
    proc = subprocess.run([sys.executable, str(MAKE_DOCS), "--check"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:] + "\nREADME.md is stale: run .venv/bin/python aux/make_docs.py"


def test_every_command_and_key_is_documented(readme, make_docs):
    from balrog_runner.campaign import config_keys

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name in scripts:
        assert f"#### {name}\n" in readme, name
        assert f"usage: {name} " in readme, name
    for section, table in config_keys.SECTIONS.items():
        for key in table:
            assert re.search(rf"^\| `{re.escape(key)}`", readme, re.M), f"{section}[{key!r}] missing"
    assert "`DBoverwrite` **DANGEROUS**" in readme
    assert "`tile-clean` *hidden*" in readme
    for site in (REPO / "site-setups").iterdir():
        assert f"#### `site-setups/{site.name}/`" in readme
    for pkg in ("source-extractor", "swarp", "libcfitsio-bin"):
        assert pkg in readme


def test_help_is_the_parsers_help(readme, make_docs):
    import os

    from balrog_runner.cli import jobs

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(make_docs.HELP_COLUMNS)
    try:
        text = jobs.build_parser().format_help()
    finally:
        if old is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = old
    assert text.strip() in readme


def test_check_detects_and_fixes_a_stale_section(tmp_path, readme):
    stale = re.sub(r"(<!-- BEGIN generated: config-keys -->\n).*?(<!-- END generated: config-keys -->)",
                   r"\1old text\n\2", readme, flags=re.S)
    path = tmp_path / "README.md"
    path.write_text(stale)
    check = [sys.executable, str(MAKE_DOCS), "--readme", str(path), "--check"]
    proc = subprocess.run(check, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "out of date" in proc.stderr
    assert path.read_text() == stale  # --check writes nothing
    subprocess.run([sys.executable, str(MAKE_DOCS), "--readme", str(path)], check=True, capture_output=True)
    assert path.read_text() == readme
    assert subprocess.run(check, capture_output=True).returncode == 0


def test_missing_markers_are_an_error(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# x\n\nno markers\n")
    proc = subprocess.run([sys.executable, str(MAKE_DOCS), "--readme", str(path), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "lacks the generated sections" in proc.stderr


def test_markdown_escaping(make_docs):
    assert make_docs._md("<dbname>_truth/_sim | a*b fetch_source") == (
        "&lt;dbname&gt;\\_truth/\\_sim \\| a\\*b fetch_source"
    )

"""The package's layout: one subpackage per pipeline stage, and imports flow one way.

:data:`STAGE_ORDER` is the rule, written once (DEVELOPING.md points here): a module may
import from its own stage and from the stages listed before it, never from a later one.
The shared top-level modules (``errors``, ``atomic``...) come first and import only each
other. The test walks every module's imports with :mod:`ast`, function-level (lazy) imports
included, so a deferred import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "balrog_runner"

#: Stages from the bottom up. ``""`` is the top-level package's own modules, shared by every
#: stage. Why this order (where the code argues against the pipeline's order of data):
#: ``db`` sits low because DESDM's file lookup (inputs), preflight (campaign) and the node's
#: pusher all use its connection layer, and it imports only ``errors``; ``campaign`` sits above
#: inputs, injection and measurement because checking a config uses their vocabularies (fetch
#: layouts, masking modes, column presets) and preflight reads inputs with their readers;
#: ``merge`` sits below ``node`` because the runner merges a completed tile
#: (``run['merge-tile']``) and finds a merged tile's realizations when it resumes; it needs
#: only ``db.campaign``'s catalog naming below it (the CLI takes the tile locks).
STAGE_ORDER: tuple[str, ...] = (
    "",             # errors, atomic, leftovers, lifetime, programs, provenance
    "sky",          # tiling, footprint, positions, lattice
    "db",           # connections, tables, pushes
    "inputs",       # DESDM lookup, manifest, URL layouts, fetch, fpack
    "injection",    # population, column mappings, offsets, masking, drawing
    "coadd",        # re-coadding single-epoch images (single-epoch campaigns)
    "measurement",  # SExtractor / SWarp / PSFEx runs, catalogs, match table
    "campaign",     # config keys, loading and checks, preflight, migrate, identity
    "jobs",         # SLURM / wq / local job files
    "merge",        # merged catalogs: join, formats, tile and campaign merges
    "node",         # the per-node runner: tiles, realizations, pool, status
    "report",       # the campaign's page and numbers
    "demo",         # synthetic survey, its DESDM tables and archive, the whole chain
    "cli",          # one argparse module per command
)

#: Old flat module paths kept one release as re-exports (each warns with its new path).
SHIMS = {"population", "population_catalog"}


def stage_of(module: str) -> str:
    """``balrog_runner.sky.geometry`` -> ``sky``; a top-level module -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every balrog_runner import in ``path``, lazy ones included."""
    module, is_pkg = module_name(path)
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "balrog_runner":
                continue
            # `from . import x` imports the module x when it is one
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                as_path = PACKAGE.parent.joinpath(*sub.split("."))
                found.append((node.lineno, sub if as_path.is_dir() or as_path.with_suffix(".py").is_file() else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "balrog_runner"]
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if module_name(p)[0].split(".")[-1] not in SHIMS)


def violations() -> list[str]:
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    out = []
    for path in modules():
        here = stage_of(module_name(path)[0])
        for line, target in imports_of(path):
            there = stage_of(target)
            if target == "balrog_runner":  # `from balrog_runner import __version__`
                there = ""
            if rank[there] > rank[here]:
                out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: stage {here or 'top'} imports "
                           f"{target} (stage {there}, above it in STAGE_ORDER)")
    return out


def test_every_subpackage_is_a_stage_with_a_docstring():
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert sub.name in STAGE_ORDER, f"{sub.name}/ is not in STAGE_ORDER"
        doc = ast.get_docstring(ast.parse((sub / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"{sub.name}/__init__.py needs a docstring saying what it may import"


def test_imports_flow_down_the_stages():
    assert not violations(), "\n".join(violations())


def test_no_cycle_between_stages():
    """Implied by the order, checked on its own so a reordering of STAGE_ORDER cannot hide one."""
    edges: dict[str, set[str]] = {}
    for path in modules():
        here = stage_of(module_name(path)[0])
        for _, target in imports_of(path):
            there = stage_of(target) if target != "balrog_runner" else ""
            if there != here:
                edges.setdefault(here, set()).add(there)

    def reach(start: str, seen: set[str]) -> set[str]:
        for nxt in edges.get(start, ()):
            if nxt not in seen:
                seen.add(nxt)
                reach(nxt, seen)
        return seen

    cycles = [s for s in edges if s in reach(s, set())]
    assert not cycles, f"stages in an import cycle: {cycles}"


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The rule bites: a sky module importing the node runner is reported."""
    fake = tmp_path / "balrog_runner"
    for path in PACKAGE.rglob("*.py"):
        target = fake / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    geometry = fake / "sky" / "geometry.py"
    geometry.write_text(geometry.read_text() + "\n\ndef _late():\n    from ..node import runner  # noqa: F401\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    found = violations()
    assert any("sky/geometry.py" in v and "balrog_runner.node.runner" in v for v in found), found


@pytest.mark.parametrize("old", sorted(SHIMS))
def test_old_paths_warn_and_re_export(old):
    import importlib
    import sys

    sys.modules.pop(f"balrog_runner.{old}", None)
    with pytest.warns(DeprecationWarning, match=r"balrog_runner\.injection\."):
        module = importlib.import_module(f"balrog_runner.{old}")
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


@pytest.mark.parametrize("doc", ["DEVELOPING.md", "README.md"])
def test_the_layout_in_the_docs_lists_every_module(doc):
    """DEVELOPING.md and the README's Layout section name every module, one line per module."""
    text = (PACKAGE.parent / doc).read_text()
    section = text[text.index("balrog_runner/\n"):]
    section = section[: section.index("```")]
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        assert path.name in section, f"{doc}'s layout does not list {path.relative_to(PACKAGE.parent)}"
    for sub in sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert f"  {sub}/" in section, f"{doc}'s layout does not list {sub}/"

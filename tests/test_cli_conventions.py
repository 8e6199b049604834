"""What every balrog-* command shares: --version, -v/-q, log lines above progress bars."""

from __future__ import annotations

import importlib
import logging
import tomllib

import pytest

from balrog_runner import __version__
from balrog_runner.cli import _common

with open(_common.__file__.rsplit("/balrog_runner/", 1)[0] + "/pyproject.toml", "rb") as fh:
    SCRIPTS = tomllib.load(fh)["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_command_has_version(name, capsys):
    module_name, func = SCRIPTS[name].split(":")
    main = getattr(importlib.import_module(module_name), func)
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{name} (balrog_runner) {__version__}"


def test_verbose_and_quiet_change_what_is_shown():
    import argparse

    parser = argparse.ArgumentParser()
    _common.add_logging_options(parser)
    ours, library = logging.getLogger("balrog_runner.node.runner"), logging.getLogger("urllib3")
    _common.setup_logging(parser.parse_args([]))
    assert ours.isEnabledFor(logging.INFO) and not ours.isEnabledFor(logging.DEBUG)
    _common.setup_logging(parser.parse_args(["-v"]))
    assert ours.isEnabledFor(logging.DEBUG) and not library.isEnabledFor(logging.DEBUG)
    _common.setup_logging(parser.parse_args(["-vv"]))
    assert library.isEnabledFor(logging.DEBUG)
    _common.setup_logging(parser.parse_args(["-q"]))
    assert ours.isEnabledFor(logging.WARNING) and not ours.isEnabledFor(logging.INFO)


def test_one_spelling_for_tile_names_and_old_ones_still_work():
    """--tile NAME [NAME ...] (repeatable) names tiles everywhere; --tiles is a list FILE;
    --tilenames (and the demo's old --tiles) still parse; balrog-report writes to --report-dir."""
    from balrog_runner.cli import demo, fetch, inputs, positions, report, tiles

    a = positions.build_parser().parse_args(["--tile", "DES0001-0001", "--tile", "DES0002-0001", "DES0003-0001",
                                             "--pertile", "3", "--outdir", "x"])
    b = positions.build_parser().parse_args(["--tilenames", "DES0001-0001", "DES0002-0001", "DES0003-0001",
                                             "--pertile", "3", "--outdir", "x"])
    assert a.tilenames == b.tilenames == ["DES0001-0001", "DES0002-0001", "DES0003-0001"]
    assert tiles.build_parser().parse_args(["--tile", "DES0001-0001", "-o", "t.fits"]).tilenames == ["DES0001-0001"]
    for module in (fetch, inputs):
        parser = module.build_parser()
        required = ["--outdir", "o", "--root", "file:///x"] if module is fetch else ["--release", "Y3A2_COADD", "--db", "x", "-o", "m"]
        assert parser.parse_args(["--tile", "DES0001-0001", "DES0002-0001", *required]).tile == [
            "DES0001-0001", "DES0002-0001"]
    assert demo.build_parser().parse_args(["--tiles", "DES0001-0001"]).tiles == ["DES0001-0001"]
    assert demo.build_parser().parse_args(["--tile", "DES0001-0001"]).tiles == ["DES0001-0001"]
    assert report.build_parser().parse_args(["camp", "--report-dir", "r"]).outdir == "r"
    assert report.build_parser().parse_args(["camp", "--outdir", "r"]).outdir == "r"


#: Codes beyond run_command's rule; balrog-run and balrog-jobs exit with the worst of their units'.
UNIT_CODES = {"balrog-run": {1, 4}, "balrog-jobs": {1, 4}, "balrog-push": {1}}
WORST_OF_UNITS = {"balrog-run", "balrog-jobs"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_command_lists_its_exit_codes_in_help(name, capsys):
    """From the one table (errors.EXIT_CODES): the codes of run_command's error rule for every
    command, plus 1 and 4 for those that run units, with the order of the worst."""
    import re

    from balrog_runner import errors

    module_name, func = SCRIPTS[name].split(":")
    main = getattr(importlib.import_module(module_name), func)
    assert main(["--help"]) == 0
    text = re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(capsys.readouterr().out.split()))  # argparse wraps at '-'
    listed = re.search(r"exit codes: (.*?)(?:; when several|\(README)", text)
    assert listed, text[-400:]
    codes = {int(part.split()[0]) for part in listed.group(1).split("; ")}
    assert codes == {0, 2, 3, 5, 6, 130, 143} | UNIT_CODES.get(name, set())
    for code in codes:
        assert f"{code} {errors.EXIT_CODES[code][0]}" in text
    assert ("the worst of their codes, in the order 143 130 2 3 5 1 6 4" in text) == (name in WORST_OF_UNITS)

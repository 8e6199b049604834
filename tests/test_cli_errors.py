"""Bad input and hostile filesystems at every command: one line, the right exit code, nothing left.

The filesystems are real: a read-only tmpfs and a 2 MiB tmpfs filled by the command itself
(root only; ``chmod 0555`` does not stop root, a read-only mount does). The network faults
are real sockets on 127.0.0.1. Exit codes are the table in :mod:`balrog_runner.errors`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path

import fitsio
import numpy as np
import pytest
from mounts import tmpfs

from balrog_runner.cli import demo as cli_demo
from balrog_runner.cli import fetch as cli_fetch
from balrog_runner.cli import jobs as cli_jobs
from balrog_runner.cli import make_tile as cli_make_tile
from balrog_runner.cli import report as cli_report
from balrog_runner.cli import run as cli_run
from balrog_runner.cli import tiles as cli_tiles

TILE = "DES0001-4914"
BAD_INPUT, DISK, NETWORK = 2, 5, 6


def one_line(capsys, prog: str) -> str:
    """The command's stderr, which must be exactly one ``<prog>: error: ...`` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err
    return err[0]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# --------------------------------------------------------------------------- numbers

NUMBERS = [
    (cli_make_tile, "balrog-make-tile", ["--ra", "nan"], "--ra must be a finite number (degrees), got 'nan'"),
    (cli_make_tile, "balrog-make-tile", ["--ra", "inf"], "--ra must be a finite number (degrees), got 'inf'"),
    (cli_make_tile, "balrog-make-tile", ["--ra", "400"], "--ra must be in 0 .. 360 degrees, got 400"),
    (cli_make_tile, "balrog-make-tile", ["--dec", "100"], "--dec must be in -90 .. 90 degrees, got 100"),
    (cli_make_tile, "balrog-make-tile", ["--seed", "-1"], "--seed must be >= 0, got -1"),
    (cli_make_tile, "balrog-make-tile", ["--seed", "1.5"], "--seed must be an integer, got '1.5'"),
    (cli_make_tile, "balrog-make-tile", ["--size", "1000000000"], "--size must be in 64 .. 20000 pixels, got 1000000000"),
    (cli_make_tile, "balrog-make-tile", ["--size", "8"], "--size must be in 64 .. 20000 pixels, got 8"),
    (cli_make_tile, "balrog-make-tile", ["--workers", "0"], "--workers must be >= 1, got 0"),
    (cli_fetch, "balrog-fetch", ["--timeout", "inf"], "--timeout must be a finite number (seconds), got 'inf'"),
    (cli_fetch, "balrog-fetch", ["--timeout", "0"], "--timeout must be > 0 and at most 604800 seconds, got 0"),
    (cli_fetch, "balrog-fetch", ["--backoff", "nan"], "--backoff must be a finite number (seconds), got 'nan'"),
    (cli_fetch, "balrog-fetch", ["--retries", "-1"], "--retries must be >= 0, got -1"),
    (cli_fetch, "balrog-fetch", ["--workers", "0"], "--workers must be >= 1, got 0"),
    (cli_demo, "balrog-demo", ["--size", "1000000000"], "--size must be in 64 .. 20000 pixels"),
    (cli_demo, "balrog-demo", ["--ngal", "0"], "--ngal must be >= 1, got 0"),
    (cli_demo, "balrog-demo", ["--realizations", "-2"], "--realizations must be >= 1, got -2"),
    (cli_demo, "balrog-demo", ["--ppn", "0"], "--ppn must be >= 1, got 0"),
    (cli_demo, "balrog-demo", ["--seed", "-1"], "--seed must be >= 0, got -1"),
    (cli_jobs, "balrog-jobs", ["--workers", "0"], "--workers must be >= 1, got 0"),
]


@pytest.mark.parametrize(("module", "prog", "args", "expect"), NUMBERS,
                         ids=[f"{p}{' '.join(a)}" for _, p, a, _ in NUMBERS])
def test_bad_numbers_are_refused_by_argparse(module, prog, args, expect, tmp_path, capsys):
    out = tmp_path / "out"
    base = {
        "balrog-make-tile": ["--tile", TILE, "--outdir", str(out)],
        "balrog-fetch": ["--tile", TILE, "--root", str(tmp_path), "--outdir", str(out)],
        "balrog-demo": ["--workdir", str(out)],
        "balrog-jobs": ["--run-local", str(out)],
    }[prog]
    assert module.main([*base, *args]) == BAD_INPUT
    line = one_line(capsys, prog)
    assert expect in line, line
    assert not out.exists()


# --------------------------------------------------------------------------- binary files


def test_binary_files_where_text_is_expected(tmp_path, capsys):
    """Regression: binary tile lists, run tables, netrc files and specs name the file."""
    blob = tmp_path / "blob.txt"
    blob.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    blob.chmod(0o600)  # no "netrc readable by others" warning
    out = tmp_path / "out"
    cases = [
        (cli_fetch, "balrog-fetch", ["--tiles", str(blob), "--root", str(tmp_path), "--outdir", str(out)]),
        (cli_fetch, "balrog-fetch", ["--tile", TILE, "--run-table", str(blob), "--root", str(tmp_path),
                                     "--outdir", str(out)]),
        (cli_fetch, "balrog-fetch", ["--tile", TILE, "--netrc", str(blob), "--root", "http://127.0.0.1:9/",
                                     "--release", "plain", "--outdir", str(out)]),
        (cli_tiles, "balrog-tiles", ["--tiles", str(blob), "-o", str(out / "t.fits")]),
        (cli_run, "balrog-run", [str(blob)]),
    ]
    for module, prog, argv in cases:
        assert module.main(argv) == BAD_INPUT, argv
        assert str(blob) in one_line(capsys, prog), argv
    assert not out.exists()


# --------------------------------------------------------------------------- filesystems


@pytest.fixture
def readonly_dir(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as path:
        yield path


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "size=2m") as path:
        yield path


def _small_campaign(root: Path) -> Path:
    """Just enough catalogs for balrog-report to have something to draw."""
    cat = root / "DES2359+0001" / "catalogs"
    cat.mkdir(parents=True)
    rng = np.random.default_rng(2)
    n = 200
    truth = np.zeros(n, dtype=[("balrog_index", "i8"), ("ra", "f8"), ("dec", "f8"), ("x", "f8"), ("y", "f8"),
                               ("not_drawn", "i4"), ("mag_g", "f8")])
    truth["balrog_index"] = np.arange(n)
    truth["ra"], truth["dec"] = rng.uniform(0, 0.2, n), rng.uniform(0, 0.2, n)
    truth["x"], truth["y"] = rng.uniform(1, 500, n), rng.uniform(1, 500, n)
    truth["mag_g"] = rng.uniform(18, 26, n)
    sim = np.zeros(n, dtype=[("balrog_index", "i8"), ("XWIN_IMAGE_DET", "f8"), ("YWIN_IMAGE_DET", "f8"),
                             ("MAG_AUTO_G", "f4")])
    sim["balrog_index"] = np.where(truth["mag_g"] < 23, truth["balrog_index"], -1)
    sim["XWIN_IMAGE_DET"], sim["YWIN_IMAGE_DET"], sim["MAG_AUTO_G"] = truth["x"], truth["y"], truth["mag_g"]
    fitsio.write(str(cat / "DES2359+0001_r0000_truth.fits"), truth)
    fitsio.write(str(cat / "DES2359+0001_r0000_sim.fits"), sim)
    fitsio.write(str(cat / "DES2359+0001_r0000_nosim.fits"), np.zeros(0, dtype=[("balrog_index", "i8")]))
    return root


def _spec_with_outdir(tmp_path: Path, outdir: Path) -> Path:
    from test_jobs import write_campaign

    from balrog_runner import jobs
    from balrog_runner.campaign import config as cfgmod

    built = jobs.build_jobs(cfgmod.load_config(write_campaign(tmp_path / "camp", [TILE])), "local")
    path = Path(built.specs[0].path)
    spec = json.loads(path.read_text())
    spec["run"]["outdir"] = str(outdir)
    path.write_text(json.dumps(spec))
    return path


READONLY = ["balrog-make-tile", "balrog-report", "balrog-demo", "balrog-tiles", "balrog-run"]


@pytest.mark.parametrize("prog", READONLY)
def test_readonly_outdir_is_one_line(prog, readonly_dir, tmp_path, capsys):
    target = readonly_dir / "sub"
    module, argv = {
        "balrog-make-tile": (cli_make_tile, ["--tile", TILE, "--outdir", str(target), "--size", "64",
                                             "--bands", "r", "--no-det"]),
        "balrog-report": (cli_report, [str(_small_campaign(tmp_path / "c")), "--outdir", str(target)]),
        "balrog-demo": (cli_demo, ["--workdir", str(target)]),
        "balrog-tiles": (cli_tiles, ["--tilenames", TILE, "-o", str(target / "t.fits")]),
        "balrog-run": (cli_run, [str(_spec_with_outdir(tmp_path, target))] if prog == "balrog-run" else []),
    }[prog]
    assert module.main(argv) == DISK
    line = one_line(capsys, prog)
    assert "not writable" in line and "read-only file system" in line and str(readonly_dir) in line, line


def test_full_disk_in_make_tile_names_disk_and_path(small_disk, capsys):
    out = small_disk / "tile"
    # 5 bands of 1024^2 float32 SCI+WGT+MSK do not fit in 2 MiB: the first FITS write fails.
    assert cli_make_tile.main(["--tile", TILE, "--outdir", str(out), "--size", "1024", "--no-fpack", "-q"]) == DISK
    line = one_line(capsys, "balrog-make-tile")
    assert "no space left on device writing " + str(out) in line, line
    assert f"(filesystem {small_disk}: " in line and "free of 2.0 MiB)" in line, line
    assert files_under(small_disk) == []  # temp files and scratch removed


def test_full_disk_in_fits_table_and_report(small_disk, tmp_path, capsys):
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as fh:
        fh.write(b"\0" * (2 << 20))  # fill the filesystem to the last block
    out = small_disk / "tiles.fits"
    assert cli_tiles.main(["--tilenames", TILE, "DES2359+0001", "-o", str(out), "-q"]) == DISK
    line = one_line(capsys, "balrog-tiles")
    assert f"no space left on device writing {out} (filesystem {small_disk}: 0 B free of 2.0 MiB)" in line, line

    report = small_disk / "report"
    assert cli_report.main([str(_small_campaign(tmp_path / "c")), "--outdir", str(report), "-q"]) == DISK
    line = one_line(capsys, "balrog-report")
    assert "no space left on device writing " + str(report) in line and str(small_disk) in line, line
    assert files_under(small_disk) == [filler]  # nothing half-written beside it


# --------------------------------------------------------------------------- network


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_server():
    """A server on 127.0.0.1 that accepts connections and never answers (a hung archive)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        srv.close()


@pytest.mark.parametrize("fault", ["refused", "timeout", "dns"])
def test_network_failure_has_its_own_exit_code(fault, tmp_path, capsys):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login u password secret-pw\nmachine archive.invalid login u password secret-pw\n")
    netrc.chmod(0o600)
    out = tmp_path / "out"
    with silent_server() as hung:
        root = {"refused": f"http://127.0.0.1:{_free_port()}/", "timeout": hung,
                "dns": "http://archive.invalid/"}[fault]
        code = cli_fetch.main(["--tile", TILE, "--root", root, "--release", "plain", "--netrc", str(netrc),
                               "--outdir", str(out), "--bands", "g", "--retries", "0", "--backoff", "0",
                               "--timeout", "0.5"])
    assert code == NETWORK
    line = one_line(capsys, "balrog-fetch")
    assert root.rstrip("/") in line and "secret-pw" not in line, line
    assert files_under(out) == []


def test_full_disk_in_fetch(tmp_path, capsys):
    """A download that does not fit: the disk error, not a network one; no partial file kept."""
    archive = tmp_path / "archive"
    assert cli_make_tile.main(["--tile", TILE, "--outdir", str(archive / TILE), "--size", "512", "--bands", "r",
                               "--no-det", "-q"]) == 0
    with tmpfs(tmp_path / "disk", "size=200k") as disk:
        out = disk / "out"
        code = cli_fetch.main(["--tile", TILE, "--root", str(archive), "--release", "plain", "--outdir", str(out),
                               "--bands", "r", "--retries", "0", "--backoff", "0", "--no-funpack", "-q"])
        assert code == DISK
        line = one_line(capsys, "balrog-fetch")
        assert f"no space left on device writing {out}" in line and f"(filesystem {disk}: " in line, line
        # what is there is complete (the small PSF model), never a partial image or a temp file
        assert [p.name for p in files_under(disk)] in ([], [f"{TILE}_r_psfcat.psf"])


def test_push_of_a_directory_without_catalogs_creates_no_database(tmp_path, capsys):
    from balrog_runner.cli import push as cli_push

    empty = tmp_path / "campaign"
    empty.mkdir()
    assert cli_push.main(["--dbname", "camp", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("balrog-push: error: no catalogs under") and err.count("\n") == 1
    assert list(tmp_path.rglob("*.sqlite")) == []


def test_full_disk_in_positions_is_a_disk_error(small_disk, capsys):
    from balrog_runner.cli import positions as cli_positions

    code = cli_positions.main(["--tilenames", "DES0002+0209", "--density", "2000000", "--seed", "1",
                               "--outdir", str(small_disk)])
    assert code == DISK
    line = one_line(capsys, "balrog-positions")
    assert f"no space left on device writing {small_disk / 'DES0002+0209.fits'}" in line, line
    assert not [p for p in small_disk.iterdir() if ".tmp-" in p.name]

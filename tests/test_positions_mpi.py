"""balrog-positions under real Open MPI: the files do not depend on the number of ranks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MPIRUN = shutil.which("mpirun")
pytestmark = [
    pytest.mark.skipif(MPIRUN is None, reason="mpirun (Open MPI) not installed"),
    pytest.mark.timeout(300),
]
SCRIPT = str(Path(sys.executable).with_name("balrog-positions"))


def _mpirun(nranks: int, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl="self,vader")
    cmd = [MPIRUN, "-n", str(nranks), "--oversubscribe", SCRIPT, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


def _tree(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


PLACEMENTS = {"random": ["--density", "3000"], "lattice": ["--lattice", "30", "--realizations", "3"]}


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_same_files_for_1_2_3_ranks(tmp_path, placement):
    tiles = tmp_path / "tiles.csv"
    # 7 Stripe 82 / SPT tiles including the RA = 0 one: more tiles than ranks, unevenly split
    tiles.write_text("tilename\nDES2359+0001\nDES0002+0001\nDES0005+0209\nDES0148-5123\n"
                     "DES0148-5831\nDES2356+0001\nDES0000+0209\n")
    outs = {}
    for n in (1, 2, 3):
        out = tmp_path / f"r{n}"
        res = _mpirun(n, ["--tiles", str(tiles), *PLACEMENTS[placement], "--seed", "17",
                          "--iterateby", "500", "--outdir", str(out), "-q"])
        assert res.returncode == 0, res.stderr
        assert f"[{n} rank(s)]" in res.stdout and res.stdout.count("balrog-positions:") == 1
        outs[n] = _tree(out)
    assert len(outs[1]) == 8  # 7 tiles + the campaign parameters file
    assert outs[1] == outs[2] == outs[3]
    # and the plain (no mpirun) run writes the same bytes
    plain = tmp_path / "plain"
    res = subprocess.run([SCRIPT, "--tiles", str(tiles), *PLACEMENTS[placement], "--seed", "17",
                          "--outdir", str(plain), "-q"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _tree(plain) == outs[1]


def test_bad_input_under_mpi_reports_once(tmp_path):
    res = _mpirun(2, ["--tilenames", "DES2359+0001", "NOPE", "--pertile", "5",
                      "--outdir", str(tmp_path / "o")])
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if "balrog-positions: error:" in ln]
    assert lines == ["balrog-positions: error: 'NOPE' is not a DES tile name (expected DESHHMM+DDMM or DESHHMM-DDMM)"]
    assert not (tmp_path / "o").exists()

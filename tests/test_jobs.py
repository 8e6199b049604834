"""Job builder: specs, SLURM/wq/local files, local runs, balrog-run, nothing half-written.

The SLURM files are executed by a real SLURM in ``test_jobs_slurm.py``; here they are
checked for structure and shell safety, and the local and wq flavours are actually run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import fitsio
import numpy as np
import pytest
import yaml

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.cli import jobs as cli_jobs
from balrog_runner.cli import run as cli_run
from balrog_runner.errors import BalrogError, ConfigError, InputFileError
from balrog_runner.jobs.spec import RECORD_FILE, read_spec

TILES = ["DES0001-0001", "DES0002-0001", "DES0003-0001", "DES0004-0001"]


def _dry_run_wrapper() -> str:
    """An executable that runs ``balrog-run --dry-run``: the job files under test call it,
    so scheduling is tested for real without running the pipeline on placeholder tiles."""
    path = Path(tempfile.gettempdir()) / f"balrog-run-dry-{os.getuid()}"
    real = Path(sys.executable).parent / "balrog-run"
    text = f"#!/bin/sh\nexec {shlex.quote(str(real))} --dry-run \"$@\"\n"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return str(path)


BALROG_RUN = _dry_run_wrapper()


#: Rows of each test position file. balrog-jobs plans every tile's realizations at build time,
#: so the files must hold what the configs ask for: here one realization of ngal 3000, and the
#: migrated Valarauko site configs of test_migrate (bnl: 3 x 1000, edison: 24 x 10).
POSITIONS_PER_FILE = 3000


def write_positions(posdir: Path, tiles: list[str]) -> None:
    """Tiny but valid position files (the contract's POSITIONS HDU).

    Written beside a plain name and moved, because cfitsio's file-name parser rejects some
    of the characters the shell-safety tests put in directory names.
    """
    posdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, t in enumerate(tiles):
            data = np.zeros(POSITIONS_PER_FILE, dtype=[("ra", "f8"), ("dec", "f8"), ("balrog_index", "i8")])
            data["balrog_index"] = np.arange(POSITIONS_PER_FILE) + 10_000 * i
            fitsio.write(f"{tmp}/p.fits", data, extname="POSITIONS", clobber=True)
            shutil.move(f"{tmp}/p.fits", posdir / f"{t}.fits")


def write_campaign(root: Path, tile_names: list[str] = TILES, name: str = "cfg.py", **run) -> Path:
    """A campaign under ``root``: position files and a CustomConfig file setting ``run``."""
    write_positions(root / "pos", tile_names)
    settings = {"dbname": "testcamp", "jobdir": str(root / "jobs"), "outdir": str(root / "out"),
                "pos": str(root / "pos"), "balrog-run": BALROG_RUN, "fetch-layout": "plain",
                "ngal": POSITIONS_PER_FILE, **run}  # one realization (balrog-jobs plans every tile)
    path = root / name
    path.write_text(textwrap.dedent(f"""\
        def CustomConfig(run, balrog, db, tiles):
            run.update({settings!r})
            tiles.extend({list(tile_names)!r})
            return run, balrog, db, tiles
        """))
    return path


def records(job_dir: Path) -> list[dict]:
    path = job_dir / RECORD_FILE
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


# ----------------------------------------------------------------------------- building


def test_slurm_groups_specs_and_batch_files(tmp_path):
    cfg = cfgmod.load_config(write_campaign(tmp_path, npersubjob=2, queue="debug", account="des",
                                            email="me@example.org", walltime="1-02:00:00"))
    built = jobs.build_jobs(cfg, "slurm")
    jd = built.job_dir
    assert jd == tmp_path / "jobs" / "testcamp"
    specs = [read_spec(p) for p in sorted((jd / "specs").glob("*.json"))]
    assert [list(s.tiles) for s in specs] == [TILES[:2], TILES[2:]]
    assert [s.group for s in specs] == [0, 1]
    batch = sorted((jd / "slurm").glob("group-*.sbatch"))
    assert [b.name for b in batch] == ["group-000.sbatch", "group-001.sbatch"]
    text = batch[1].read_text()
    assert "#SBATCH --partition=debug" in text and "#SBATCH --account=des" in text
    assert "#SBATCH --time=1-02:00:00" in text and "#SBATCH --mail-user=me@example.org" in text
    assert text.count("srun -N1 -n1 --cpus-per-task=1 --nodelist") == 1 and "subjob-0001.json" in text and "subjob-0000.json" not in text
    for f in batch + [jd / "submit.sh"]:
        assert subprocess.run(["bash", "-n", str(f)]).returncode == 0
    assert "--dependency" not in (jd / "submit.sh").read_text()
    assert (jd / "logs").is_dir()


def test_slurm_nodes_per_group_and_dependency_chain(tmp_path):
    tiles = TILES + ["DES0005-0001", "DES0006-0001"]
    cfg = cfgmod.load_config(write_campaign(tmp_path, tiles, nodes=3, asdependency=True))
    built = jobs.build_jobs(cfg, "slurm")
    batch = sorted((built.job_dir / "slurm").glob("*.sbatch"))
    assert len(batch) == 2
    assert batch[0].read_text().count("srun -N1 -n1 --cpus-per-task=1 --nodelist") == 3
    assert "#SBATCH --nodes=3" in batch[0].read_text()
    submit = (built.job_dir / "submit.sh").read_text()
    assert submit.count('--dependency="afterany:$prev"') == 2  # rendered once per file after the first
    assert [list(s.tiles) for s in built.specs] == [[t] for t in tiles]


def test_slurm_array(tmp_path):
    cfg = cfgmod.load_config(write_campaign(tmp_path, nodes=4, asarray=True, arraymax=2))
    built = jobs.build_jobs(cfg, "slurm")
    text = (built.job_dir / "slurm" / "array.sbatch").read_text()
    assert "#SBATCH --array=0-3%2" in text and "#SBATCH --nodes=1" in text
    assert not list((built.job_dir / "slurm").glob("group-*"))


def test_job_steps_are_given_the_allocations_cpus(tmp_path):
    """srun (Slurm >= 22.05) does not inherit --cpus-per-task: every step must pass run['ppn'].

    Run for real, with CPU binding, in test_jobs_slurm.py; here for every SLURM flavour.
    """
    cfg = cfgmod.load_config(write_campaign(tmp_path, nodes=2, ppn=3))
    built = jobs.build_jobs(cfg, "slurm")
    cfg = cfgmod.load_config(write_campaign(tmp_path / "array", nodes=4, asarray=True, ppn=3))
    array = jobs.build_jobs(cfg, "slurm")
    files = sorted((built.job_dir / "slurm").glob("*.sbatch")) + [array.job_dir / "slurm" / "array.sbatch"]
    assert len(files) == 3
    for f in files:
        text = f.read_text()
        sruns = [ln for ln in text.splitlines() if ln.startswith("srun ")]
        assert sruns and all(ln.startswith("srun -N1 -n1 --cpus-per-task=3 ") for ln in sruns), f
        assert "#SBATCH --cpus-per-task=3\n" in text and "\nexport SRUN_CPUS_PER_TASK=3\n" in text


def _sbatch_lines(text: str) -> list[str]:
    """The #SBATCH lines sbatch reads: those before the first other non-comment line."""
    out = []
    for line in text.splitlines()[1:]:
        if line.startswith("#SBATCH"):
            out.append(line)
        elif line.strip() and not line.startswith("#"):
            break
    return out


def test_sbatch_extra_lines(tmp_path):
    extra = ["--license=scratch", "--comment=try 2; $(touch PWNED)", "--exclusive"]
    cfg = cfgmod.load_config(write_campaign(tmp_path, nodes=4, asarray=True, **{"sbatch-extra": extra}))
    built = jobs.build_jobs(cfg, "slurm")
    lines = _sbatch_lines((built.job_dir / "slurm" / "array.sbatch").read_text())
    words = [shlex.split(ln.removeprefix("#SBATCH ")) for ln in lines]
    assert all(len(w) == 1 for w in words)  # one shell word per line
    assert [w[0] for w in words if w[0] in extra] == extra  # all of them, in order, among the #SBATCH lines
    assert not list(tmp_path.rglob("PWNED"))
    assert "#SBATCH --license=scratch" in lines  # quoted only where needed


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["comment=x"], "one sbatch long option per entry"),
        (["-c 4"], "one sbatch long option per entry"),
        (["--comment=a\n#SBATCH --wrap=x"], "newline"),
        (["--nodes=2"], "--nodes is set by balrog-jobs \\(from run\\['nodes'\\]\\)"),
        (["--output=/tmp/x"], "--output is set by balrog-jobs"),
        (["--out=/tmp/x"], "--output is set by balrog-jobs"),  # sbatch takes unambiguous prefixes
        (["--comment=ok", "--cpus=4"], "--cpus-per-task is set by balrog-jobs \\(from run\\['ppn'\\]\\)"),
        ("--comment=x", "expected strlist"),
    ],
)
def test_sbatch_extra_rejects(tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        cfgmod.load_config(write_campaign(tmp_path, **{"sbatch-extra": extra}))


def _path_without(program: str, tmp_path: Path) -> str:
    """PATH with ``program`` absent: the venv and system dirs minus any dir holding it."""
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / program).exists()]
    assert shutil.which(program, path=os.pathsep.join(dirs)) is None
    return os.pathsep.join(dirs)


def test_stripe_rendered_and_harmless_without_lustre(tmp_path):
    """run['stripe'] adds 'lfs setstripe -c N outdir' before the runs; without lfs (here) or
    off Lustre the job warns and still runs every subjob."""
    plain = jobs.build_jobs(cfgmod.load_config(write_campaign(tmp_path / "p")), "slurm")
    assert "lfs" not in (plain.job_dir / "slurm" / "group-000.sbatch").read_text()
    root = tmp_path / "a b$(touch PWNED)"
    cfg = cfgmod.load_config(write_campaign(root, TILES[:1], stripe=8))
    slurm = jobs.build_jobs(cfg, "slurm")
    text = (slurm.job_dir / "slurm" / "group-000.sbatch").read_text()
    assert "lfs setstripe -c 8 \"$stripe_dir\"" in text and text.index("lfs setstripe") < text.index("\nsrun ")
    assert subprocess.run(["bash", "-n", str(slurm.job_dir / "slurm" / "group-000.sbatch")]).returncode == 0
    wq = jobs.build_jobs(cfgmod.load_config(write_campaign(root, TILES[:1], stripe=8)), "wq", replace=True)
    command = yaml.safe_load((wq.job_dir / "testcamp.yaml").read_text())["command"]
    assert command.index("lfs setstripe -c 8") < command.index("mpirun")
    assert subprocess.run(["bash", "-n"], input=command, text=True).returncode == 0
    built = jobs.build_jobs(cfgmod.load_config(write_campaign(root, TILES[:1], stripe=8)), "local",
                            replace=True)
    env = dict(os.environ, PATH=_path_without("lfs", tmp_path))
    out = subprocess.run(["bash", str(built.job_dir / "run.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"warning: lfs not found; {root / 'out'} not striped" in out.stderr
    assert (root / "out").is_dir() and [r["subjob"] for r in records(built.job_dir)] == [0]
    # An lfs that refuses (what lfs says off Lustre: "not on a Lustre filesystem", exit 22).
    # lfs cannot be installed here (no Debian package): this stand-in only plays its refusal.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "lfs").write_text('#!/bin/sh\necho "lfs setstripe: $4: not on a Lustre filesystem" >&2\nexit 22\n')
    (fake / "lfs").chmod(0o755)
    env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    (built.job_dir / RECORD_FILE).unlink()
    out = subprocess.run(["bash", str(built.job_dir / "run.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "not on a Lustre filesystem" in out.stderr and "failed (not on Lustre?); going on unstriped" in out.stderr
    assert [r["subjob"] for r in records(built.job_dir)] == [0]
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("stripe", [0, -2, 2001, 1.5, True])
def test_stripe_rejects(tmp_path, stripe):
    with pytest.raises(ConfigError, match="run\\['stripe'\\]"):
        cfgmod.load_config(write_campaign(tmp_path, stripe=stripe))


@pytest.mark.parametrize(
    ("settings", "scheduler", "warns"),
    [
        ({"nodes": 2}, "slurm", True),  # two node runners in one job
        ({"npersubjob": 2}, "slurm", True),  # two independent jobs may run at once
        ({"npersubjob": 2, "asdependency": True}, "slurm", False),  # chained: one at a time
        ({"nodes": 4, "asarray": True}, "slurm", True),
        ({"nodes": 4, "asarray": True, "arraymax": 1}, "slurm", False),
        ({"nodes": 4}, "wq", True),
        ({"nodes": 2, "push": False}, "slurm", False),  # the safe pattern: one balrog-push later
        ({"nodes": 2}, "local", False),  # one machine, its own disk
    ],
)
def test_sqlite_on_several_nodes_warns(tmp_path, caplog, settings, scheduler, warns):
    cfg = cfgmod.load_config(write_campaign(tmp_path, **settings))
    jobs.build_jobs(cfg, scheduler)
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "SQLite" in r.getMessage()]
    assert bool(warned) == warns
    if warns:
        msg = warned[0].getMessage()
        assert str(tmp_path / "out" / "testcamp.sqlite") in msg and "run['push'] = False" in msg and "balrog-push" in msg
    path = write_campaign(tmp_path / "pg", **settings)
    path.write_text(path.read_text().replace("return run", 'db["url"] = "postgresql://u@h/d"\n    return run'))
    caplog.clear()
    jobs.build_jobs(cfgmod.load_config(path), scheduler)
    assert not [r for r in caplog.records if "SQLite" in r.getMessage()]


def test_wq_yaml(tmp_path):
    cfg = cfgmod.load_config(write_campaign(tmp_path, nodes=2, npersubjob=2, queue="bynode"))
    built = jobs.build_jobs(cfg, "wq")
    doc = yaml.safe_load((built.job_dir / "testcamp.yaml").read_text())
    assert doc["mode"] == "bynode" and doc["N"] == 2 and doc["hostfile"] == "auto"
    assert doc["job_name"] == "testcamp" and doc["group"] == ["bynode"]
    assert "mpirun -np 2 -hostfile %hostfile%" in doc["command"]
    assert doc["command"].count("subjob-000") == 2


def test_wq_command_runs_under_mpirun(tmp_path):
    """The wq command block, with wq's %hostfile% filled in, runs each node's spec via mpirun."""
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun (Open MPI) not installed")
    cfg = cfgmod.load_config(write_campaign(tmp_path, TILES[:2], nodes=1, npersubjob=2))
    built = jobs.build_jobs(cfg, "wq")
    command = yaml.safe_load((built.job_dir / "testcamp.yaml").read_text())["command"]
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost slots=1\n")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_plm="isolated",
               OMPI_MCA_btl="self", OMPI_MCA_rmaps_base_oversubscribe="1")
    out = subprocess.run(["bash", "-c", command.replace("%hostfile%", str(hostfile))], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [r["tiles"] for r in records(built.job_dir)] == [TILES[:2]]


def test_existing_job_dir_needs_force(tmp_path):
    path = write_campaign(tmp_path)
    built = jobs.build_jobs(cfgmod.load_config(path), "local")
    marker = built.job_dir / "logs" / "keep"
    marker.write_text("x")
    with pytest.raises(ConfigError, match="already exists"):
        jobs.build_jobs(cfgmod.load_config(path), "local")
    assert marker.exists()
    jobs.build_jobs(cfgmod.load_config(path), "local", replace=True)
    assert not marker.exists() and (built.job_dir / "run.sh").exists()


def test_failed_render_leaves_nothing(tmp_path):
    cfg = cfgmod.load_config(write_campaign(tmp_path))
    cfg.source = Path("/tmp/evil\nrm -rf ~")  # bypasses load_config: the renderer must refuse
    with pytest.raises(ConfigError, match="newline"):
        jobs.build_jobs(cfg, "slurm", check_programs=False)
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


def test_nasty_values_stay_one_shell_word(tmp_path):
    """A job dir and source path full of shell syntax: the job runs and nothing is injected."""
    nasty = tmp_path / "a b'c\"$(touch PWNED)`touch PWNED2`;x"
    nasty.mkdir()
    source = nasty / "set up.sh"
    source.write_text('export BALROG_TEST_SOURCED=yes\n')
    cfg = cfgmod.load_config(write_campaign(nasty, TILES[:2], nodes=2), source=source)
    built = jobs.build_jobs(cfg, "local")
    out = subprocess.run(["bash", str(built.job_dir / "run.sh")], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(r["subjob"] for r in records(built.job_dir)) == [0, 1]
    assert not list(tmp_path.rglob("PWNED*"))
    jobs.build_jobs(cfgmod.load_config(write_campaign(nasty, TILES[:2], nodes=2), source=source), "slurm",
                    replace=True)
    for f in (built.job_dir / "slurm").glob("*.sbatch"):
        assert subprocess.run(["bash", "-n", str(f)]).returncode == 0
    assert not list(tmp_path.rglob("PWNED*"))


def test_no_password_in_job_files(tmp_path):
    path = write_campaign(tmp_path, npersubjob=4)
    text = path.read_text().replace("return run", 'db["url"] = "postgresql://alice:s3cr3tpw@db.example:5432/des"\n    return run')
    path.write_text(text)
    cfg = cfgmod.load_config(path)
    built = jobs.build_jobs(cfg, "slurm", check_programs=False)
    for f in built.job_dir.rglob("*"):
        if f.is_file():
            assert "s3cr3tpw" not in f.read_text(), f
    spec = read_spec(built.specs[0].path)
    assert spec.db["url"] == "postgresql://alice@db.example:5432/des"


# ----------------------------------------------------------------------------- specs


def test_spec_round_trip_and_rejects(tmp_path):
    built = jobs.build_jobs(cfgmod.load_config(write_campaign(tmp_path, npersubjob=2)), "local")
    spec = built.specs[1]
    back = read_spec(spec.path)
    assert back == spec
    data = json.loads(spec.path.read_text())
    bad = tmp_path / "bad.json"
    for mutate, match in [
        (lambda d: d.update(format="other"), "not a subjob spec"),
        (lambda d: d.pop("tiles"), "'tiles'"),
        (lambda d: d.update(tiles=["DES0001-0001; rm -rf /"]), "not DES tile names"),
        (lambda d: d["run"].update(ngals=3), "did you mean 'ngal'"),
    ]:
        d = json.loads(json.dumps(data))
        mutate(d)
        bad.write_text(json.dumps(d))
        with pytest.raises(BalrogError, match=match):
            read_spec(bad)
    bad.write_text("{not json")
    with pytest.raises(InputFileError, match="not readable JSON"):
        read_spec(bad)


# ----------------------------------------------------------------------------- local runs


def test_local_submit_runs_every_subjob(tmp_path, capsys):
    path = write_campaign(tmp_path, TILES[:3], nodes=2, npersubjob=1)
    code = cli_jobs.main(["--config", str(path), "--scheduler", "local", "--submit", "-q"])
    assert code == 0
    jd = Path(capsys.readouterr().out.strip())
    got = sorted((r["subjob"], r["tiles"]) for r in records(jd))
    assert got == [(0, [TILES[0]]), (1, [TILES[1]]), (2, [TILES[2]])]
    assert all(r["failed"] == [] for r in records(jd))
    assert len(list((jd / "logs").glob("subjob-*.log"))) == 3


def test_local_failing_tile_fails_the_run(tmp_path):
    path = write_campaign(tmp_path, npersubjob=2)
    built = jobs.build_jobs(cfgmod.load_config(path), "local")
    (tmp_path / "pos" / f"{TILES[3]}.fits").unlink()
    out = subprocess.run(["bash", str(built.job_dir / "run.sh")], capture_output=True, text=True)
    assert out.returncode == 2  # the worst of the subjobs': a missing position file is bad input
    recs = {r["subjob"]: r for r in records(built.job_dir)}
    assert recs[0]["failed"] == [] and recs[1]["failed"] == [TILES[3]]


def test_local_bounded_workers(tmp_path):
    """With one worker the subjobs run one after the other (their intervals never overlap)."""
    built = jobs.build_jobs(cfgmod.load_config(write_campaign(tmp_path, nodes=1)), "local")
    assert jobs.run_local(built.job_dir, workers=1) == 0
    recs = sorted(records(built.job_dir), key=lambda r: r["start"])
    assert len(recs) == 4
    assert all(a["end"] <= b["start"] for a, b in zip(recs, recs[1:], strict=False))


# ----------------------------------------------------------------------------- balrog-run CLI


def test_balrog_run_by_rank_and_errors(tmp_path, monkeypatch, capsys):
    built = jobs.build_jobs(cfgmod.load_config(write_campaign(tmp_path, npersubjob=2)), "local")
    paths = [str(s.path) for s in built.specs]
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    assert cli_run.main(["--by-rank", "--dry-run", "-q", *paths]) == 0
    assert [r["subjob"] for r in records(built.job_dir)] == [1]
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "5")
    assert cli_run.main(["--by-rank", "--dry-run", "-q", *paths]) == 2
    assert "rank 5" in capsys.readouterr().err
    assert cli_run.main([str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("balrog-run: error: spec") and "\n" not in err


def test_detect_scheduler_asks_the_controller(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert jobs.detect_scheduler() == "local"  # no sbatch
    for name, body in (("sbatch", ""), ("scontrol", 'echo "Slurmctld(primary) at node1 is UP"')):
        fake = tmp_path / name
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
    assert jobs.detect_scheduler() == "slurm"
    (tmp_path / "scontrol").write_text("#!/bin/sh\necho 'scontrol: fatal: no configuration' >&2\nexit 1\n")
    assert jobs.detect_scheduler() == "local"  # client tools without a cluster
    (tmp_path / "scontrol").unlink()
    assert jobs.detect_scheduler() == "slurm"  # no way to ask: trust sbatch


def test_cli_errors_are_one_line(tmp_path, capsys):
    path = write_campaign(tmp_path, TILES[:3], npersubjob=2)
    assert cli_jobs.main(["--config", str(path), "--scheduler", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("balrog-jobs: error: 3 tiles do not split") and "\n" not in err
    assert not (tmp_path / "jobs").exists()
    assert cli_jobs.main(["--config", str(path), "--source", str(tmp_path / "nope.sh")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_jobs.main(["--list-keys"]) == 0
    assert "DBoverwrite" in capsys.readouterr().out

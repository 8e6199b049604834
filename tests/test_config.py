"""Campaign configuration: defaults, CustomConfig loading, validation, derived values."""

from __future__ import annotations

import os
import runpy
import textwrap
from pathlib import Path

import fitsio
import numpy as np
import pytest
from sqlalchemy.dialects import oracle, postgresql
from test_jobs import TILES, write_campaign, write_positions

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.campaign import config_check, config_keys, derived
from balrog_runner.cli import jobs as cli_jobs
from balrog_runner.db.schema import table_names
from balrog_runner.errors import BalrogError, ConfigError, InputFileError, TileError


def _config(tmp_path: Path, body: str, tiles=TILES) -> Path:
    """A config file whose CustomConfig runs ``body`` after setting the required entries."""
    write_positions(tmp_path / "pos", list(tiles))
    path = tmp_path / "cfg.py"
    path.write_text(
        "def CustomConfig(run, balrog, db, tiles):\n"
        f"    run['dbname'] = 'camp'\n    run['jobdir'] = {str(tmp_path / 'jobs')!r}\n"
        f"    run['outdir'] = {str(tmp_path / 'out')!r}\n    run['pos'] = {str(tmp_path / 'pos')!r}\n"
        "    run['fetch-layout'] = 'plain'\n"
        f"    tiles.extend({list(tiles)!r})\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\n    return run, balrog, db, tiles\n"
    )
    return path


def test_every_key_documented_and_defaults_resolve(monkeypatch, tmp_path):
    for table in config_keys.SECTIONS.values():
        for name, key in table.items():
            assert key.help.strip(), name
    run = config_keys.default_run()
    assert run["bands"] == ["g", "r", "i", "z", "Y"] and run["sex"] == "source-extractor" and run["swarp"] == "SWarp"
    assert Path(run["db-columns"]).is_file()  # shipped with the repository
    assert Path(run["sex-param"]).parent == config_keys.config_dir()
    assert run["sex-config"] is None and run["swarp-config"] is None  # the desdm-recipe's files (config_check)
    monkeypatch.setenv(config_keys.CONFIG_DIR_ENV, str(tmp_path))
    assert config_keys.default_run()["sex-param"] == str(tmp_path / "default.param")
    text = config_keys.describe_keys()
    assert "DBoverwrite" in text and "dangerous" in text and "hidden" in text and "tile-clean" in text
    # fresh copies: editing one default dict never leaks into the next
    run["bands"].append("u")
    assert config_keys.default_run()["bands"] == ["g", "r", "i", "z", "Y"]


def test_load_and_derived_values(tmp_path):
    cfg = cfgmod.load_config(_config(tmp_path, "run['joblabel'] = 'try1'\nrun['ngal'] = 50"))
    assert cfg.tiles == TILES and cfg.run["ngal"] == 50
    assert derived.jobname(cfg.run) == "camp-try1"
    assert derived.job_dir(cfg.run) == tmp_path / "jobs" / "camp-try1"
    assert derived.db_url(cfg.run, cfg.db) == f"sqlite:///{tmp_path / 'out' / 'camp.sqlite'}"
    assert derived.position_file(cfg.run, TILES[0]) == tmp_path / "pos" / f"{TILES[0]}.fits"
    cfg.run["npersubjob"] = 3
    assert derived.subjob_tiles(cfg.run, cfg.tiles) == [TILES[:3], TILES[3:]]
    for key in ("jobname", "job_dir", "db_url"):
        assert key not in cfg.run  # derived, never stored


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    write_positions(tmp_path / "pos", TILES[:1])
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.py"
    path.write_text(textwrap.dedent("""\
        def CustomConfig(run, balrog, db, tiles):
            run.update(dbname="x", jobdir="jobs", outdir="~/out", pos="pos", **{"fetch-layout": "plain"})
            return run, balrog, db, ["DES0001-0001"]
        """))
    cfg = cfgmod.load_config(path)
    assert cfg.run["jobdir"] == str(tmp_path / "jobs") and cfg.run["outdir"] == str(Path.home() / "out")


def test_tiles_from_text_and_fits_files(tmp_path):
    write_positions(tmp_path / "pos", TILES)
    listing = tmp_path / "tiles.txt"
    listing.write_text("# campaign tiles\n" + "\n".join(TILES[:2]) + "\n\n")
    fits = tmp_path / "tiles.fits"
    data = np.zeros(2, dtype=[("TILENAME", "S12"), ("RA", "f8")])
    data["TILENAME"] = TILES[2:]
    fitsio.write(str(fits), data, clobber=True)
    for listfile, want in ((listing, TILES[:2]), (fits, TILES[2:])):
        path = write_campaign(tmp_path, [], name="c.py", tiles=str(listfile))
        assert cfgmod.load_config(path).tiles == want


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ("run['ngals'] = 5", ConfigError, "unknown key run\\['ngals'\\] \\(did you mean 'ngal'\\?\\)"),
        ("balrog['sead-offset'] = 1", ConfigError, "did you mean 'seed-offset'"),
        ("run['nodes'] = '2'", ConfigError, "run\\['nodes'\\] = '2' is a str; expected int"),
        ("run['nodes'] = True", ConfigError, "expected int"),
        ("run['asarray'] = 1", ConfigError, "expected bool"),
        ("run['outdir'] = None", ConfigError, "run\\['outdir'\\] is required"),
        ("run['dbname'] = 'my-camp'", ConfigError, "it names the tables"),
        ("run['walltime'] = '24h'", ConfigError, "HH:MM:SS"),
        ("run['queue'] = 'debug\\n#SBATCH --wrap=x'", ConfigError, "newline"),
        ("run['queue'] = 'a b'", ConfigError, "only letters"),
        ("run['bands'] = ['g', 'u']", ConfigError, "distinct bands"),
        ("run['inject-into'] = 'se'", ConfigError, "run\\['inject-into'\\] = 'se': use 'coadd' or 'single-epoch'"),
        ("db['duplicate'] = 'ignore'", ConfigError, "'error' or 'replace'"),
        ("run['asarray'] = True\nrun['asdependency'] = True", ConfigError, "cannot both be True"),
        ("run['jobdir'] = '/tmp/100%x'", ConfigError, "SLURM expands"),
        ("run['fetch-url'] = '{root}/{tile}.fits.fz'", ConfigError, "no \\{band\\} placeholder"),
        ("run['fetch-layout'] = 'desdmx'", ConfigError, "allowed: desdm, plain"),
        ("run['fetch-root'] = 'https://me:pw@host/x'", ConfigError, "holds credentials"),
        ("tiles.append('DES0001-0001; rm -rf ~')", TileError, "not DES tile names"),
        ("tiles.append('DES0001-0001')", TileError, "listed twice"),
        ("tiles.append('DES2359+0001')", InputFileError, "no position file .* DES2359\\+0001"),
    ],
)
def test_bad_values(tmp_path, body, error, match):
    with pytest.raises(error, match=match):
        cfgmod.load_config(_config(tmp_path, body))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("run['fetch-timeout'] = float('inf')", "run\\['fetch-timeout'\\] = inf must be a finite number"),
        ("run['fetch-timeout'] = float('nan')", "run\\['fetch-timeout'\\] = nan must be a finite number"),
        ("run['fetch-timeout'] = -1", "must be > 0 and <= 86400 seconds"),
        ("run['fetch-timeout'] = 1e12", "must be > 0 and <= 86400 seconds"),
        ("balrog['star-fraction'] = float('nan')", "star-fraction.* must be a finite number"),
        ("run['ngal'] = 2**64", "run\\['ngal'\\] = 18446744073709551616 does not fit in 64 bits"),
        ("run['realization-list'] = [0, 2**63]", "realization-list.* does not fit in 64 bits"),
        ("balrog['seed-offset'] = -1", "seed-offset.* must be within 0..2\\*\\*62"),
        ("run['fetch-workers'] = 0", "fetch-workers'\\] = 0 must be >= 1"),
        ("run['fetch-workers'] = 10**6", "fetch-workers'\\] = 1000000 must be <= 64"),
        ("run['dbname'] = ''", "run\\['dbname'\\] is required"),
        ("run['dbname'] = '_camp'", "run\\['dbname'\\]: dbname '_camp' is not allowed: .* starting with a letter"),
        ("run['dbname'] = '1camp'", "starting with a letter"),
        ("run['dbname'] = 'a' * 52", "too long for every database \\(PostgreSQL's limit\\): .* use at most 51 characters"),
    ],
)
def test_numbers_and_dbname_rejected_at_load(tmp_path, body, match):
    """Values that used to load: inf reached the spec as JSON 'Infinity', a dbname the DB
    layer refuses (or PostgreSQL truncates) failed only at the first push, on the nodes."""
    with pytest.raises(ConfigError, match=match):
        cfgmod.load_config(_config(tmp_path, body))


def test_longest_dbname_accepted(tmp_path):
    cfg = cfgmod.load_config(_config(tmp_path, "run['dbname'] = 'a' * 51"))
    for dialect in (postgresql.dialect(), oracle.dialect()):  # the DB layer accepts every name
        assert table_names(cfg.run["dbname"], dialect)


def test_nonfinite_value_never_reaches_a_spec(tmp_path):
    """The spec writer refuses NaN/Infinity itself (defence behind check_config)."""
    cfg = cfgmod.load_config(_config(tmp_path, "run['ngal'] = 1000"))  # planned against write_positions' rows
    cfg.run["fetch-timeout"] = float("inf")  # bypasses load_config
    with pytest.raises(ConfigError, match="cannot be written to the spec"):
        jobs.build_jobs(cfg, "local", check_programs=False)
    assert not (tmp_path / "jobs" / "camp").exists()


@pytest.mark.parametrize(("code", "shown"), [(0, "sys.exit(0)"), (3, "sys.exit(3)"), (None, "sys.exit(None)"),
                                             ("'bye'", "sys.exit('bye')")])
@pytest.mark.parametrize("where", ["module", "CustomConfig"])
def test_config_calling_sys_exit_is_a_config_error(tmp_path, capsys, code, shown, where):
    """sys.exit in a config ended balrog-jobs with the config's code (0: silently, nothing built)."""
    path = _config(tmp_path, f"import sys\nsys.exit({code})" if where == "CustomConfig" else "")
    if where == "module":
        path.write_text(f"import sys\nsys.exit({code})\n" + path.read_text())
    assert cli_jobs.main(["--config", str(path), "--scheduler", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("balrog-jobs: error: ") and shown in err and str(path) in err and "\n" not in err
    assert not (tmp_path / "jobs").exists()


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, "DES0001-0001\n".encode("utf-16"),
                                     b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_binary_tile_list_is_a_one_line_error(tmp_path, capsys, content):
    listing = tmp_path / "tiles.txt"
    listing.write_bytes(content)
    path = write_campaign(tmp_path, [], name="c.py", tiles=str(listing))
    with pytest.raises(InputFileError, match=f"tile list {listing} is not a text file"):
        cfgmod.load_config(path)
    assert cli_jobs.main(["--config", str(path), "--scheduler", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"balrog-jobs: error: tile list {listing} is not a text file") and "\n" not in err


def test_all_problems_in_one_message(tmp_path):
    with pytest.raises(ConfigError) as info:
        cfgmod.load_config(_config(tmp_path, "run['ngals'] = 1\nrun['ppn'] = 'x'"))
    msg = str(info.value)
    assert "ngals" in msg and "ppn" in msg and str(tmp_path / "cfg.py") in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
        ("def CustomConfig(run, balrog, db, tiles):\n    return 1/0\n", "CustomConfig in .* raised ZeroDivisionError"),
        ("def CustomConfig(run, balrog, db, tiles):\n    return run\n", "must return \\(run, balrog, db, tiles\\); it returned dict"),
        ("def CustomConfig(run, balrog, db, tiles):\n    return run, balrog, db\n", "of length 3"),
        ("def CustomConfig(run, balrog, db, tiles):\n    return run, balrog, db, 'DES0001-0001'\n", "returned str for tiles"),
        ("x = 1\n", "defines no function CustomConfig"),
        ("def CustomConfig(run:\n", "syntax error at line 1"),
    ],
)
def test_config_file_failures(tmp_path, text, match):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        cfgmod.load_config(path)


def test_missing_config_and_source(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        cfgmod.load_config(tmp_path / "nope.py")
    with pytest.raises(ConfigError, match="--source script .* does not exist"):
        cfgmod.load_config(_config(tmp_path, ""), source=tmp_path / "setup.sh")


def test_scheduler_rules(tmp_path):
    cfg = cfgmod.load_config(_config(tmp_path, "run['npersubjob'] = 2"))
    config_check.validate_for_scheduler(cfg, "slurm", check_programs=False)  # 4 / (1*2) = 2 groups
    config_check.validate_for_scheduler(cfg, "local", check_programs=False)
    with pytest.raises(ConfigError, match="wq needs len\\(tiles\\) == nodes\\*npersubjob \\(4 != 2\\); set nodes = 2"):
        config_check.validate_for_scheduler(cfg, "wq", check_programs=False)
    cfg.run["asarray"] = True
    with pytest.raises(ConfigError, match="a SLURM array needs"):
        config_check.validate_for_scheduler(cfg, "slurm", check_programs=False)
    with pytest.raises(ConfigError, match="SLURM options"):
        config_check.validate_for_scheduler(cfg, "local", check_programs=False)
    cfg.run.update(asarray=False, npersubjob=3)
    with pytest.raises(ConfigError, match="4 tiles do not split into groups of nodes\\*npersubjob = 1\\*3 = 3"):
        config_check.validate_for_scheduler(cfg, "slurm", check_programs=False)
    config_check.validate_for_scheduler(cfg, "local", check_programs=False)  # local takes any count
    with pytest.raises(ConfigError, match="scheduler 'pbs' unknown"):
        config_check.validate_for_scheduler(cfg, "pbs")


def test_programs_resolved_after_source(tmp_path):
    bindir = tmp_path / "my bin"
    bindir.mkdir()
    prog = bindir / "sex-2.25"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    source = tmp_path / "setup.sh"
    source.write_text(f"export PATH={str(bindir)!r}:\"$PATH\"\necho noise on stdout\n")
    cfg = cfgmod.load_config(_config(tmp_path, "run['sex'] = 'sex-2.25'"), source=source)
    with pytest.raises(ConfigError, match="programs not found \\(use --source"):
        config_check.resolve_programs({"sex": "sex-2.25"}, None)
    config_check.validate_for_scheduler(cfg, "local")
    assert cfg.programs["sex"] == str(prog)
    assert cfg.programs["swarp"].endswith("/SWarp")


def test_programs_cannot_inject(tmp_path):
    marker = tmp_path / "PWNED"
    with pytest.raises(ConfigError, match="programs not found") as info:
        config_check.resolve_programs({"sex": f"x; touch {marker}", "swarp": f"$(touch {marker})"}, None)
    assert "run['sex']" in str(info.value) and "run['swarp']" in str(info.value)
    assert not marker.exists()


def test_failing_source_script(tmp_path):
    """The script is sourced before the config runs (as Valarauko did): a failure stops there."""
    source = tmp_path / "setup.sh"
    source.write_text("module load does-not-exist 2>/dev/null\nfalse_command_xyz\nreturn 1\n")
    with pytest.raises(ConfigError, match="failed when sourced by bash: .*false_command_xyz"):
        cfgmod.load_config(_config(tmp_path, ""), source=source)


def test_source_exported_before_the_config_runs(tmp_path, monkeypatch):
    """Configs read what --source exports (os.environ['Y1A1_DIR'] in the Valarauko site configs);
    the process environment is left as it was afterwards."""
    monkeypatch.delenv("BALROG_TEST_SITE_DIR", raising=False)
    monkeypatch.setenv("BALROG_TEST_DROPPED", "x")
    source = tmp_path / "setup.sh"
    source.write_text(f"export BALROG_TEST_SITE_DIR={str(tmp_path / 'site')!r}\nunset BALROG_TEST_DROPPED\n")
    body = ("import os\nrun['outdir'] = os.path.join(os.environ['BALROG_TEST_SITE_DIR'], 'out')\n"
            "assert 'BALROG_TEST_DROPPED' not in os.environ\nrun['sex-config'] = '$BALROG_TEST_SITE_DIR/sex.config'")
    cfg = cfgmod.load_config(_config(tmp_path, body), source=source)
    assert cfg.run["outdir"] == str(tmp_path / "site" / "out")
    assert cfg.run["sex-config"] == str(tmp_path / "site" / "sex.config")  # path keys expand it too
    assert "BALROG_TEST_SITE_DIR" not in os.environ and os.environ["BALROG_TEST_DROPPED"] == "x"
    with pytest.raises(ConfigError, match="KeyError: 'BALROG_TEST_SITE_DIR' \\(an environment variable: pass the script that exports it with --source\\)"):
        cfgmod.load_config(_config(tmp_path, body))


@pytest.mark.parametrize(
    "tiles_expr",
    ["np.array(TILES)", "np.array([t.encode() for t in TILES])", "np.array([t + '  ' for t in TILES], dtype='S14')",
     "fitsio_like['tilename']", "tuple(TILES)"],
)
def test_tiles_as_numpy_array(tmp_path, tiles_expr):
    """Valarauko configs returned esutil.io.read(...)['tilename']: a numpy array of bytes."""
    write_positions(tmp_path / "pos", TILES)
    path = tmp_path / "cfg.py"
    path.write_text(textwrap.dedent(f"""\
        import numpy as np
        TILES = {TILES!r}
        fitsio_like = np.zeros(4, dtype=[('tilename', 'S12'), ('ra', 'f8')])
        fitsio_like['tilename'] = TILES
        def CustomConfig(run, balrog, db, tiles):
            run.update(dbname='c', jobdir={str(tmp_path)!r}, outdir={str(tmp_path)!r}, pos={str(tmp_path / 'pos')!r})
            run['fetch-layout'] = 'plain'
            return run, balrog, db, {tiles_expr}
        """))
    cfg = cfgmod.load_config(path)
    assert cfg.tiles == TILES and all(type(t) is str for t in cfg.tiles)


@pytest.mark.parametrize(
    ("tiles_expr", "match"),
    [("np.array([TILES])", "returned a 2-d array for tiles"), ("[1, 2]", "returned a int \\(1\\) among the tiles"),
     ("{'DES0001-0001': 1}", "returned dict for tiles")],
)
def test_bad_tile_containers(tmp_path, tiles_expr, match):
    path = _config(tmp_path, "")
    path.write_text("import numpy as np\nTILES = " + repr(TILES) + "\n" + path.read_text().replace(
        "return run, balrog, db, tiles", f"return run, balrog, db, {tiles_expr}"))
    with pytest.raises(ConfigError, match=match):
        cfgmod.load_config(path)


@pytest.mark.parametrize(
    ("body", "present", "absent"),
    [
        # Valarauko keys: where they went, never a look-alike current key
        ("run['balrog'] = 'balrog.py'", "run['balrog'] (Valarauko) has no equivalent", "did you mean 'balrog-run'"),
        ("run['cores'] = 8", "run['cores'] (Valarauko) has no equivalent", "did you mean 'nodes'"),
        ("run['downsample'] = 80", "run['downsample'] (Valarauko) is now run['realizations']", "did you mean 'dbname'"),
        ("balrog['sexparam'] = 'x.param'", "balrog['sexparam'] (Valarauko) is now run['sex-param']", "did you mean"),
        # a current key in the wrong section, then plain typos
        ("db['ngal'] = 8", "unknown key db['ngal']: it belongs in run['ngal']", "Valarauko"),
        ("run['nodez'] = 8", "unknown key run['nodez'] (did you mean 'nodes'?)", "Valarauko"),
        ("run['colour'] = 8", "unknown key run['colour'] (known: dbname,", "did you mean"),
    ],
)
def test_unknown_key_messages(tmp_path, body, present, absent):
    with pytest.raises(ConfigError) as info:
        cfgmod.load_config(_config(tmp_path, body))
    assert present in str(info.value) and absent not in str(info.value)


def test_password_removed_from_db_url(tmp_path, caplog):
    cfg = cfgmod.load_config(_config(tmp_path, "db['url'] = 'postgresql+psycopg://bob:hunter2@localhost:5432/balrog'"))
    assert cfg.db["url"] == "postgresql+psycopg://bob@localhost:5432/balrog"
    assert "hunter2" not in caplog.text
    with pytest.raises(BalrogError) as info:
        cfgmod.load_config(_config(tmp_path, "db['url'] = 'not a url :hunter2'"))
    assert "hunter2" not in str(info.value)


def test_section_leaves_url_to_the_node(tmp_path):
    cfg = cfgmod.load_config(_config(tmp_path, "db['section'] = 'dessci'\ndb['reader'] = 'DES_READER'"))
    assert derived.db_url(cfg.run, cfg.db) is None
    assert cfg.db["ini"] == "~/.desservices.ini"  # expanded on the node, not here


def _write_manifest(path: Path, tiles, bands) -> None:
    from balrog_runner.inputs import manifest

    entries = {t: {b: manifest.FileEntry(f"OPS/multiepoch/Y3A2/r1/{t}/p01/coadd/{t}_r1p01_{b}.fits.fz",
                                         f"OPS/multiepoch/Y3A2/r1/{t}/p01/psf/{t}_r1p01_{b}_psfcat.psf")
                   for b in [*bands, "det"]} for t in tiles}
    manifest.write(manifest.Manifest(release="Y3A2_COADD", era="y3", tiles=entries), path)


def test_site_setups_load(repo_root, tmp_path, monkeypatch):
    """Every shipped site-setup config loads (its paths pointed at a scratch area)."""
    sites = sorted((repo_root / "site-setups").glob("*/config.py"))
    assert {p.parent.name for p in sites} >= {"nersc-perlmutter", "nersc-edison", "bnl-wq", "laptop"}
    monkeypatch.setenv("BALROG_CAMPAIGN_DIR", str(tmp_path))
    for site in sites:
        assert (site.parent / "source.sh").is_file()
        run, _, _, tiles = runpy.run_path(str(site))["CustomConfig"](*config_keys.defaults())
        write_positions(Path(run["pos"]), tiles)
        if run.get("fetch-manifest"):  # what balrog-inputs writes on a login node
            _write_manifest(Path(run["fetch-manifest"]), tiles, run["bands"])
        cfg = cfgmod.load_config(site)
        scheduler = {"bnl-wq": "wq", "laptop": "local"}.get(site.parent.name, "slurm")
        config_check.validate_for_scheduler(cfg, scheduler, check_programs=False)


def test_example_pyconfig_is_a_no_op(repo_root):
    """The shipped example pyconfig loads with the injection stage's loader and changes nothing."""
    population = pytest.importorskip("balrog_runner.injection.population")
    pyc = population.load_pyconfig(repo_root / "config" / "example_pyconfig.py")
    rng = np.random.default_rng(1)
    defaults = {"mag_i": np.array([20.0, 21.0]), "ra": np.zeros(2), "dec": np.zeros(2)}
    assert pyc.simulation_rules(rng, 2, ("g", "r"), defaults) == {}
    assert pyc.galsim_params("r") == {} and pyc.sextractor_configs("r") == {}


def test_inputs_must_resolve_at_build_time(tmp_path):
    """The shipped default (DESDM Y1 layout, no run) used to build and fail on every node."""
    with pytest.raises(ConfigError, match=r"run\['fetch-\*'\].*needs a \{run\}.*fetch-manifest"):
        cfgmod.load_config(_config(tmp_path, "run['fetch-layout'] = 'desdm'"))
    inputs = tmp_path / "inputs.json"
    _write_manifest(inputs, TILES[:1], list(config_keys.ALL_BANDS))  # the other tiles are missing
    with pytest.raises(InputFileError) as err:
        cfgmod.load_config(_config(tmp_path, f"run['fetch-manifest'] = {str(inputs)!r}"))
    msg = str(err.value)
    assert f"inputs do not resolve for {len(TILES) - 1} tile(s)" in msg and TILES[1] in msg
    assert "\n" not in msg
    _write_manifest(inputs, TILES, list(config_keys.ALL_BANDS))
    cfg = cfgmod.load_config(_config(tmp_path, f"run['fetch-manifest'] = {str(inputs)!r}"))
    assert cfg.run["fetch-manifest"] == str(inputs)
    table = tmp_path / "runs.txt"
    table.write_text("".join(f"{t} 20130101000000_{t}\n" for t in TILES[:2]))
    with pytest.raises(InputFileError, match=f"{TILES[2]} g .*not in the run table"):
        cfgmod.load_config(_config(tmp_path, f"run['fetch-layout'] = 'y1'\nrun['fetch-run-table'] = {str(table)!r}"))

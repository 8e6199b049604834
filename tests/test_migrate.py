"""balrog-migrate: Valarauko site configs (Edison / SLURM, BNL / wq) to balrog_runner configs.

The fixtures in tests/data/valarauko/ have the structure and keys of the original site
configs: ``$Y1A1_DIR`` from the ``--source`` script, tiles from ``esutil.io.read`` as a numpy
array, a ``TrustEric`` preset loaded with ``imp.load_source``. Each is migrated, loaded and
built through ``balrog-jobs`` with the real programs resolved after ``--source``.
"""

from __future__ import annotations

import importlib.util
import shutil
import textwrap
import warnings
from pathlib import Path

import fitsio
import numpy as np
import pytest
from test_jobs import BALROG_RUN, write_positions

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.campaign import config_keys, derived, migrate, old_keys
from balrog_runner.cli import jobs as cli_jobs
from balrog_runner.cli import migrate as cli_migrate
from balrog_runner.errors import ConfigError
from balrog_runner.inputs import manifest

FIXTURES = Path(__file__).parent / "data" / "valarauko"
#: The tile list files the fixtures read: 6 tiles, the configs slice them.
LIST_TILES = ["DES0324-4748", "DES0326-4914", "DES0326-5457", "DES0328-4249", "DES0328-5205", "DES0330-4832"]
SITES = {
    # site: (scheduler, tile list file, position dir, tiles after the config's slice)
    "edison": ("slurm", "spt-y1a1-only-g70-grizY.fits", "spt-y1a1-only-g70-grizY-pos-sphere", LIST_TILES[1:4]),
    "bnl": ("wq", "y1a1-sptw1-grizY.fits", "y1a1-sptw1-grizY-tile-100000", LIST_TILES[0:4]),
}


@pytest.fixture(autouse=True)
def _quiet_imp():
    with warnings.catch_warnings():  # the fixtures import imp, as the originals did
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _site(tmp_path: Path, site: str) -> tuple[Path, Path, Path]:
    """Copy the fixtures and fill y1a1/ with the files the configs name; (config, source, manifest)."""
    root = tmp_path / "valarauko"
    shutil.copytree(FIXTURES, root)
    y1 = root / "y1a1"
    _, listfile, posdir, tiles = SITES[site]
    data = np.zeros(len(LIST_TILES), dtype=[("tilename", "S12"), ("ra", "f8")])
    data["tilename"] = LIST_TILES
    fitsio.write(str(y1 / listfile), data, clobber=True)
    write_positions(y1 / posdir, tiles)
    shipped = config_keys.config_dir()
    for src, dst in (("default.sex", "20150806_sex.config"), ("default.param", "20150806_sex.param_diskonly"),
                     ("default.swarp", "20150806_default.swarp"),
                     ("y1a1_coadd_objects-columns.fits", "y1a1_coadd_objects-columns.fits")):
        shutil.copy(shipped / src, y1 / dst)
    shutil.copy("/usr/share/source-extractor/default.conv", y1 / "20150806_sex.conv")
    shutil.copy("/usr/share/source-extractor/default.nnw", y1 / "20150806_sex.nnw")
    cmc = np.zeros(3, dtype=[("Mapp_i_subaru", "f4"), ("halflightradius_0", "f4"), ("sersicindex_0", "f4")])
    fitsio.write(str(y1 / "CMC_allband_upsample.fits"), cmc, clobber=True)  # COSMOS Mock Catalog columns
    bindir = y1 / "bin"  # the --source script puts it on PATH: Edison's sexpath and 'swarp' live there
    bindir.mkdir()
    (bindir / "sex").symlink_to(shutil.which("source-extractor"))
    (bindir / "swarp").symlink_to(shutil.which("SWarp"))
    entries = {t: {b: manifest.FileEntry(f"OPS/coadd/r1/coadd/{t}_{b}.fits.fz", f"OPS/coadd/r1/coadd/{t}_{b}_psfcat.psf")
                   for b in ["g", "r", "i", "z", "Y", "det"]} for t in tiles}
    mpath = manifest.write(manifest.Manifest(release="Y1A1_COADD", era="y1", tiles=entries), tmp_path / "inputs.json")
    return root / site / "y1-config.py", root / site / "y1-source.sh", mpath


def _migrate(tmp_path: Path, site: str, capsys) -> tuple[Path, Path, str, str]:
    old, source, mpath = _site(tmp_path, site)
    new = tmp_path / f"{site}-new.py"
    code = cli_migrate.main([str(old), "--source", str(source), "--fetch-manifest", str(mpath), "-o", str(new)])
    err = capsys.readouterr().err
    assert code == 0, err
    return new, source, new.read_text(), err


# Per site: old key -> (new key, value), or the reason it is listed (a substring).
EDISON = {
    "balrog['ngal']": ("run['ngal']", 10),
    "balrog['sexconfig']": ("run['sex-config']", "y1a1/20150806_sex.config"),
    "balrog['sexparam']": ("run['sex-param']", "y1a1/20150806_sex.param_diskonly"),
    "balrog['sexconv']": ("run['sex-filter']", "y1a1/20150806_sex.conv"),
    "balrog['sexnnw']": ("run['sex-nnw']", "y1a1/20150806_sex.nnw"),
    "balrog['sexpath']": ("run['sex']", "y1a1/bin/sex"),
    "run['fixwrapseed']": ("balrog['seed-offset']", 12345),
    "run['downsample']": ("run['realizations']", 24),  # 240 positions / ngal 10
    "run['paralleldownload']": ("run['fetch-workers']", 4),
    "run['duplicate']": ("db['duplicate']", "replace"),
    "run['nodes']": ("run['nodes']", 3), "run['ppn']": ("run['ppn']", 24),
    "run['walltime']": ("run['walltime']", "00:30:00"), "run['queue']": ("run['queue']", "debug"),
    "run['npersubjob']": ("run['npersubjob']", 1), "run['asdependency']": ("run['asdependency']", True),
    "run['stripe']": ("run['stripe']", 2), "run['email']": ("run['email']", "someone@example.org"),
    "run['DBoverwrite']": ("run['DBoverwrite']", True), "run['release']": ("run['release']", "y1a1_coadd"),
    "run['dbname']": ("run['dbname']", "y1a1_etest"), "run['joblabel']": ("run['joblabel']", "1-4"),
    "run['swarp']": ("run['swarp']", "swarp"), "run['funpack']": ("run['funpack']", "funpack"),
    "run['swarp-config']": ("run['swarp-config']", "y1a1/20150806_default.swarp"),
    "run['db-columns']": ("run['db-columns']", "y1a1/y1a1_coadd_objects-columns.fits"),
    "run['pos']": ("run['pos']", "y1a1/spt-y1a1-only-g70-grizY-pos-sphere"),
    "run['jobdir']": ("run['jobdir']", "scratch/BalrogJobs"),
    "run['outdir']": ("run['outdir']", "scratch/BalrogScratch/y1a1_etest-1-4"),
    "balrog['pyconfig']": "Valarauko signature",
    "balrog['catalog']": "COSMOS Mock Catalog",
    "balrog['slrdir']": "SLR zero-point",
    "balrog['nosimsexparam']": "run['sex-param'] like sim",
    "run['balrog']": "GalSim draws",
    "run['cores']": "follow run['ppn']",
    "run['allfail']": "fails alone",
    "run['runnum']": "missing today",
    "run['shifter']": "missing today",
    "run['fixnoiseseed']": "deterministic",
}
BNL = {
    "balrog['ngal']": ("run['ngal']", 1000),
    "run['downsample']": ("run['realizations']", 3),  # 2500 positions / 1000: 3 realizations
    "run['paralleldownload']": ("run['fetch-workers']", 1),
    "run['duplicate']": ("db['duplicate']", "error"),  # None (append unchecked) is gone
    "run['nodes']": ("run['nodes']", 2), "run['ppn']": ("run['ppn']", 8), "run['npersubjob']": ("run['npersubjob']", 2),
    "run['asdependency']": ("run['asdependency']", False), "run['queue']": ("run['queue']", None),
    "run['stripe']": ("run['stripe']", None), "run['DBoverwrite']": ("run['DBoverwrite']", False),
    "run['bands']": ("run['bands']", ["g", "r", "i", "z", "Y"]),
    "run['intermediate-clean']": ("run['intermediate-clean']", True), "run['tile-clean']": ("run['tile-clean']", True),
    "run['dbname']": ("run['dbname']", "y1a1_btest"), "run['joblabel']": ("run['joblabel']", "0-4"),
    "run['jobdir']": ("run['jobdir']", "global/BalrogJobs"),
    "run['outdir']": ("run['outdir']", "scratch/BalrogScratch/y1a1_btest-0-4"),
    "db['db_host']": ("db['section']", "dessci"), "db['service_name']": ("db['section']", "dessci"),
    "balrog['catalog']": "COSMOS Mock Catalog",
    "balrog['catfitstype']": "FITS binary tables",
    "run['wget']": "over HTTP",
    "run['doDES']": "forced it off",
    "run['cores']": "follow run['ppn']",
}


def _get(cfg: cfgmod.Config, expr: str):
    section, name = expr.split("[", 1)
    return getattr(cfg, section)[name.strip("[]'")]


@pytest.mark.parametrize(("site", "expected"), [("edison", EDISON), ("bnl", BNL)])
def test_migrated_site_config_loads_builds_and_keeps_every_key(tmp_path, monkeypatch, capsys, site, expected):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.desservices.ini here: the nodes' one is used
    scheduler, _, _, tiles = SITES[site]
    new, source, text, err = _migrate(tmp_path, site, capsys)
    root = tmp_path / "valarauko"
    cfg = cfgmod.load_config(new, source=source)
    assert cfg.tiles == tiles  # numpy bytes array from the esutil read, sliced by the config
    # the database the original wrote to, never the SQLite default
    assert cfg.db["section"] == "dessci" and cfg.db["reader"] == "DES_READER"
    assert derived.db_url(cfg.run, cfg.db) is None
    header = text.split("def CustomConfig", 1)[0]
    for old, want in expected.items():
        if isinstance(want, tuple):
            got = _get(cfg, want[0])
            if isinstance(got, str) and isinstance(want[1], str) and "/" in want[1]:
                assert got == str(root / want[1]), old
            else:
                assert got == want[1], old
        else:  # listed, with the reason, at the top of the file and on stderr
            assert f"{old} = " in header and want in header.split(f"{old} = ", 1)[1].splitlines()[0], old
            assert old in err, old
    # every key the old config set is accounted for: carried, commented out, or listed
    m = migrate.translate(migrate.evaluate(root / site / "y1-config.py", source))
    listed = {w for w, _, _ in m.dropped}
    kept = set(m.entries) | {t for t, _, _ in m.commented}
    for section, names in m.old.assigned.items():
        for name in names:
            rule = old_keys.OLD_KEYS.get((section, name))
            target = rule.target if rule and rule.target else (section, name)
            assert f"{section}['{name}']" in listed or target in kept, (section, name)
    # end to end: balrog-jobs with --source finds the programs the old site set up
    code = cli_jobs.main(["--config", str(new), "--source", str(source), "--scheduler", scheduler])
    out, err = capsys.readouterr()
    assert code == 0, err
    job_dir = Path(out.strip().splitlines()[-1])
    assert job_dir == root / expected["run['jobdir']"][1] / f"{cfg.run['dbname']}-{cfg.run['joblabel']}"
    built = jobs.build_jobs(cfgmod.load_config(new, source=source), scheduler, replace=True, check_programs=False)
    assert sorted(t for s in built.specs for t in s.tiles) == sorted(tiles)


def test_campaigns_sharing_an_outdir_stay_apart(tmp_path, capsys):
    """Two old configs with one outdir and different joblabels: the original wrote to
    <outdir>/<dbname>-<joblabel>, so do the migrated ones (not both into <outdir>)."""
    old, source, mpath = _site(tmp_path, "edison")
    second = old.with_name("y1-config-again.py")
    second.write_text(old.read_text().replace("run['joblabel'] = f'{tstart}-{tend}'", "run['joblabel'] = 'again'"))
    outdirs = []
    for path in (old, second):
        new = tmp_path / f"{path.stem}-new.py"
        assert cli_migrate.main([str(path), "--source", str(source), "--fetch-manifest", str(mpath), "-o", str(new)]) == 0
        outdirs.append(cfgmod.load_config(new, source=source).run["outdir"])
    shared = tmp_path / "valarauko" / "scratch" / "BalrogScratch"
    assert outdirs == [str(shared / "y1a1_etest-1-4"), str(shared / "y1a1_etest-again")]


def test_without_source_the_old_config_fails_naming_source(tmp_path, monkeypatch, capsys):
    old, _, _ = _site(tmp_path, "edison")
    monkeypatch.delenv("Y1A1_DIR", raising=False)
    assert cli_migrate.main([str(old)]) == 2
    err = capsys.readouterr().err
    assert "KeyError: 'Y1A1_DIR'" in err and "--source" in err and len(err.strip().splitlines()) == 1


def test_without_manifest_the_output_says_what_is_missing(tmp_path, capsys):
    old, source, _ = _site(tmp_path, "bnl")
    assert cli_migrate.main([str(old), "--source", str(source)]) == 0
    out, err = capsys.readouterr()
    assert "balrog-inputs" in out and "run['fetch-manifest']" in out
    assert "does not load yet" in err and "inputs" in err
    assert "def CustomConfig(run, balrog, db, tiles):" in out


@pytest.mark.skipif(importlib.util.find_spec("esutil") is not None, reason="esutil is installed here")
def test_balrog_jobs_on_an_old_config_points_to_migrate(tmp_path):
    old, source, _ = _site(tmp_path, "edison")
    with pytest.raises(ConfigError, match="imports esutil .*balrog-migrate"):
        cfgmod.load_config(old, source=source)
    assert "esutil" not in __import__("sys").modules  # migrations in this process left no stand-in behind


def test_old_key_names_say_where_they_went(tmp_path):
    write_positions(tmp_path / "pos", ["DES0001-0001"])
    path = tmp_path / "cfg.py"
    path.write_text(textwrap.dedent(f"""\
        def CustomConfig(run, balrog, db, tiles):
            run.update(dbname='c', jobdir={str(tmp_path)!r}, outdir={str(tmp_path)!r}, pos={str(tmp_path / 'pos')!r})
            run['fetch-layout'] = 'plain'
            run['balrog-run'] = {BALROG_RUN!r}
            balrog['ngal'] = 10
            run['balrog'] = '/opt/balrog.py'
            run['cores'] = 8
            run['downsample'] = 100
            db['db_host'] = 'leovip148.ncsa.uiuc.edu'
            run['seed-offset'] = 3
            tiles.append('DES0001-0001')
            return run, balrog, db, tiles
        """))
    with pytest.raises(ConfigError) as info:
        cfgmod.load_config(path)
    msg = str(info.value)
    assert "balrog['ngal'] (Valarauko) is now run['ngal']" in msg
    assert "run['balrog'] (Valarauko) has no equivalent: the Balrog program" in msg
    assert "run['cores'] (Valarauko) has no equivalent" in msg and "run['ppn']" in msg
    assert "run['downsample'] (Valarauko) is now run['realizations']" in msg
    assert "db['db_host'] (Valarauko) is now db['section']" in msg
    assert "run['seed-offset']: it belongs in balrog['seed-offset']" in msg
    assert "did you mean" not in msg  # the wrong difflib hints: balrog-run, nodes, dbname
    assert "balrog-migrate" in msg and "\n" not in msg


def test_key_table_is_consistent():
    for (section, name), rule in old_keys.OLD_KEYS.items():
        assert name not in config_keys.SECTIONS[section], (section, name)  # would shadow a current key
        if rule.target is not None:
            assert rule.target[1] in config_keys.SECTIONS[rule.target[0]], rule.target
        else:
            assert rule.note, (section, name)


def test_imp_standin_where_python_has_no_imp(tmp_path, monkeypatch, capsys):
    """Python 3.12 removed imp; the site configs load BuildJob.py with imp.load_source."""
    monkeypatch.setitem(__import__("sys").modules, "imp", None)  # import imp now fails, as on 3.12
    new, source, text, _ = _migrate(tmp_path, "edison", capsys)
    assert "run['stripe'] = 2" in text  # set by the TrustEric preset loaded through the stand-in

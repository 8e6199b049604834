"""balrog-migrate: Valarauko site configs (Edison and Cori / SLURM, BNL / wq) to balrog_runner configs.

The fixtures in tests/data/valarauko/ have the structure and keys of the original site
configs: ``$Y1A1_DIR`` or ``$BALROG_CONFIG`` and ``$SCRATCH`` from the ``--source`` script,
tiles from ``esutil.io.read`` as a numpy array, a ``TrustEric`` preset loaded with
``imp.load_source``. Each is migrated, compiled, loaded and built through ``balrog-jobs``
with the real programs resolved after ``--source``.
"""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
import textwrap
import warnings
from pathlib import Path

import fitsio
import healpy
import numpy as np
import pytest
from test_jobs import BALROG_RUN, write_positions

from balrog_runner import jobs
from balrog_runner.campaign import config as cfgmod
from balrog_runner.campaign import config_keys, derived, migrate, old_keys
from balrog_runner.cli import jobs as cli_jobs
from balrog_runner.cli import migrate as cli_migrate
from balrog_runner.errors import ConfigError
from balrog_runner.injection import mag_offsets
from balrog_runner.injection.catalog_columns import COSMOS_MOCK_COLUMNS
from balrog_runner.inputs import manifest

FIXTURES = Path(__file__).parent / "data" / "valarauko"
#: The tile list files the fixtures read: 6 tiles, the configs slice them.
LIST_TILES = ["DES0324-4748", "DES0326-4914", "DES0326-5457", "DES0328-4249", "DES0328-5205", "DES0330-4832"]
SITES = {
    # site: (scheduler, tile list file, position dir, tiles after the config's slice)
    "edison": ("slurm", "spt-y1a1-only-g70-grizY.fits", "spt-y1a1-only-g70-grizY-pos-sphere", LIST_TILES[1:4]),
    "cori": ("slurm", "y1a1-sptw1-grizY.fits", "y1a1-sptw1-grizY-tile-100000", LIST_TILES[2:6]),
    "bnl": ("wq", "y1a1-sptw1-grizY.fits", "y1a1-sptw1-grizY-tile-100000", LIST_TILES[0:4]),
}
#: What a new machine has of each site's data: the COSMOS Mock Catalog the config names
#: (None: not copied, the usual case) and whether the Y1A1 SLR table is in balrog['slrdir'].
SITE_DATA = {
    "edison": (None, False),
    "cori": ("CMC_originalR_v1.fits", True),
    "bnl": ("CMC_allband_upsample.fits", False),
}


def write_cosmos_catalog(path: Path, n: int = 50) -> Path:
    """A small table with the COSMOS Mock Catalog's columns (as the original's cosmos.fits)."""
    rng = np.random.default_rng(3)
    names = [f"Mapp_{b}_subaru" for b in "griz"] + ["Mapp_HSC_y", "halflightradius", "sersicindex", "axisratio", "beta"]
    data = np.zeros(n, dtype=[(name, "f4") for name in names])
    for b in "griz":
        data[f"Mapp_{b}_subaru"] = rng.uniform(20, 25, n)
    data["Mapp_HSC_y"] = rng.uniform(20, 25, n)
    data["halflightradius"] = rng.uniform(0.2, 1.5, n)
    data["sersicindex"] = rng.uniform(0.5, 4, n)
    data["axisratio"] = rng.uniform(0.3, 1, n)
    data["beta"] = rng.uniform(0, 180, n)
    fitsio.write(str(path), data, clobber=True)
    return path


def write_slr_table(path: Path, nside: int = 4) -> Path:
    """The original's Y1A1 SLR zero-point shift table (HPIX RING, ZP_SHIFT per band, MAG<i>),
    covering the whole sky at a low resolution; one pixel of band i not fitted (99)."""
    npix = 12 * nside**2
    data = np.zeros(npix, dtype=[("HPIX", "i8"), ("ZP_SHIFT", "f8", (5,))])
    data["HPIX"] = np.arange(npix)
    data["ZP_SHIFT"] = 0.01 * np.arange(1, 6) + 1e-4 * np.arange(npix)[:, None]
    data["ZP_SHIFT"][7, 2] = 99.0
    header = {"NSIDE": nside, **{f"MAG{i}": f"MAG_PSF_{b}" for i, b in enumerate("GRIZY")}}
    fitsio.write(str(path), data, header=header, clobber=True)
    return path


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
    catalog, slr = SITE_DATA[site]
    if catalog:
        write_cosmos_catalog(y1 / catalog)
    if slr:
        write_slr_table(y1 / "y1a1_wide_slr_wavg_zpshift2.fit")
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
    "balrog['catalog']": "is not on this machine",
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
    "balrog['catalog']": ("balrog['population']", "y1a1/CMC_allband_upsample.fits"),
    "balrog['slrdir']": "no y1a1_wide_slr_wavg_zpshift2.fit",
    "balrog['catfitstype']": "FITS binary tables",
    "run['wget']": "over HTTP",
    "run['doDES']": "forced it off",
    "run['cores']": "follow run['ppn']",
}

CORI = {
    "balrog['ngal']": ("run['ngal']", 1000),
    "balrog['sexconfig']": ("run['sex-config']", "y1a1/20150806_sex.config"),
    "balrog['catalog']": ("balrog['population']", "y1a1/CMC_originalR_v1.fits"),
    "run['duplicate']": ("db['duplicate']", "error"),
    "run['nodes']": ("run['nodes']", 4), "run['ppn']": ("run['ppn']", 32), "run['stripe']": ("run['stripe']", 2),
    "run['walltime']": ("run['walltime']", "5:00:00"), "run['queue']": ("run['queue']", "regular"),
    "run['dbname']": ("run['dbname']", "y1a1_sptw_01"), "run['joblabel']": ("run['joblabel']", "2-6"),
    "run['pos']": ("run['pos']", "y1a1/y1a1-sptw1-grizY-tile-100000"),
    "run['jobdir']": ("run['jobdir']", "cscratch/BalrogJobs"),
    "run['outdir']": ("run['outdir']", "cscratch/BalrogScratch/y1a1_sptw_01-2-6"),
    "balrog['pyconfig']": "Valarauko signature",
    "run['balrog']": "GalSim draws",
    "run['cores']": "follow run['ppn']",
    "run['runnum']": "missing today",
}
EXPECTED = {"edison": EDISON, "cori": CORI, "bnl": BNL}


def _get(cfg: cfgmod.Config, expr: str):
    section, name = expr.split("[", 1)
    return getattr(cfg, section)[name.strip("[]'")]


@pytest.mark.parametrize("site", sorted(SITES))
def test_migrated_site_config_loads_builds_and_keeps_every_key(tmp_path, monkeypatch, capsys, site):
    expected = EXPECTED[site]
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.desservices.ini here: the nodes' one is used
    scheduler, _, _, tiles = SITES[site]
    new, source, text, err = _migrate(tmp_path, site, capsys)
    root = tmp_path / "valarauko"
    py_compile.compile(str(new), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    head = text.split("\ndef CustomConfig", 1)[0]
    assert all(line.startswith("#") or line in ("", "import os") or line.startswith("from balrog_runner")
               for line in head.splitlines()), head  # every line above CustomConfig is a comment
    cfg = cfgmod.load_config(new, source=source)
    assert cfg.tiles == tiles  # numpy bytes array from the esutil read, sliced by the config
    # the database the original wrote to, never the SQLite default, with its table names
    assert cfg.db["section"] == "dessci" and cfg.db["reader"] == "DES_READER"
    assert cfg.db["table-prefix"] == "balrog_"
    # paths the old config built from exported variables stay built from them
    assert "os.path.join(os.environ['SCRATCH'], 'BalrogScratch/" in text
    catalog, slr = SITE_DATA[site]
    if catalog:
        assert cfg.balrog["population-columns"] == COSMOS_MOCK_COLUMNS
    else:
        assert cfg.balrog["population"] is None and "# balrog['population'] = os.path.join(os.environ[" in text
    if slr:
        maps = cfg.balrog["mag-offset-maps"]
        assert sorted(maps) == sorted(cfg.run["bands"])
        assert Path(maps["i"]).parent == new.with_name(f"{new.stem}-mag-offsets")
        loaded = mag_offsets.load_maps(maps)
        ra, dec = healpy.pix2ang(4, np.array([0, 7, 100]), lonlat=True)
        assert np.allclose(loaded["g"].lookup(ra, dec), 0.01 + 1e-4 * np.array([0, 7, 100]))
        # the pixel the original had not fitted in i gets its neighbours' mean, as the original filled it
        nbrs = healpy.get_all_neighbours(4, 7)
        assert np.isclose(loaded["i"].lookup(ra[1:2], dec[1:2])[0], np.mean(0.03 + 1e-4 * nbrs[nbrs >= 0]))
    else:
        assert cfg.balrog["mag-offset-maps"] is None
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
    assert cli_migrate.main([str(old), "--source", str(source)]) == 2  # written, but it does not load
    out, err = capsys.readouterr()
    assert "balrog-inputs" in out and "run['fetch-manifest']" in out
    assert "def CustomConfig(run, balrog, db, tiles):" in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("balrog-migrate: error: the new config was written but does not load yet: ")
    assert "run['fetch-manifest'] (from balrog-inputs)" in last


def test_a_catalog_message_of_several_lines_stays_a_comment(tmp_path, capsys):
    """A catalog that is not FITS: CFITSIO's message has several lines and cuts long paths at
    80 characters; the new file still compiles and names the path whole, never split at ';'."""
    old, source, mpath = _site(tmp_path, "edison")
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    garbage = deep / "CMC_allband_upsample.fits"
    garbage.write_bytes(b"SIMPLE  = not a FITS header" * 200)
    old.write_text(old.read_text().replace("balrog['catalog'] = os.path.join(dir, 'CMC_allband_upsample.fits')",
                                           f"balrog['catalog'] = {str(garbage)!r}"))
    new = tmp_path / "new.py"
    assert cli_migrate.main([str(old), "--source", str(source), "--fetch-manifest", str(mpath), "-o", str(new)]) == 0
    err = capsys.readouterr().err
    text = new.read_text()
    py_compile.compile(str(new), cfile=str(tmp_path / "c.pyc"), doraise=True)
    lines = [line for line in text.splitlines() if "balrog['population']" in line]
    assert lines and all(str(garbage) in line for line in lines)
    assert "FITSIO status" in lines[0]
    assert not any(line.lstrip().startswith(";") for line in text.splitlines() + err.splitlines())
    assert any(str(garbage) in line and "FITSIO status" in line for line in err.splitlines())


def test_paths_from_the_environment_follow_the_new_machine(tmp_path, capsys):
    """$SCRATCH and $Y1A1_DIR are read when the new config runs: another --source, other paths."""
    new, source, text, _ = _migrate(tmp_path, "edison", capsys)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "valarauko" / "y1a1", elsewhere / "y1a1", symlinks=True)
    other = tmp_path / "other-source.sh"
    other.write_text(f"export Y1A1_DIR={elsewhere / 'y1a1'}\nexport SCRATCH={elsewhere / 'scratch'}\n"
                     f"export LOCAL={elsewhere / 'local'}\nexport PATH={elsewhere / 'y1a1' / 'bin'}:$PATH\n")
    cfg = cfgmod.load_config(new, source=other)
    assert cfg.run["outdir"] == str(elsewhere / "scratch" / "BalrogScratch" / "y1a1_etest-1-4")
    assert cfg.run["pos"] == str(elsewhere / "y1a1" / "spt-y1a1-only-g70-grizY-pos-sphere")
    assert cfg.run["sex-config"] == str(elsewhere / "y1a1" / "20150806_sex.config")
    assert str(tmp_path / "valarauko" / "scratch") not in text.split("def CustomConfig", 1)[1].split("#")[0]


def test_a_directory_of_the_original_machine_is_not_created(tmp_path, capsys):
    """Edison's original config wrote to a literal /scratch3/scratchdirs/...: that directory
    does not exist here, so outdir and jobdir are commented out and the command fails saying
    so; balrog-jobs on the written file creates nothing under /scratch3."""
    assert not Path("/scratch3").exists()
    old, source, mpath = _site(tmp_path, "edison")
    old.write_text(old.read_text().replace("baseout = os.environ['SCRATCH']", "baseout = '/scratch3/scratchdirs/someone/'"))
    new = tmp_path / "new.py"
    code = cli_migrate.main([str(old), "--source", str(source), "--fetch-manifest", str(mpath), "-o", str(new)])
    err = capsys.readouterr().err
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "does not load yet" in last and "run['outdir'] is required" in last
    assert "/scratch3 does not exist on this machine" in err
    text = new.read_text()
    assert "    # run['outdir'] = '/scratch3/scratchdirs/someone/BalrogScratch/y1a1_etest-1-4'" in text
    assert cli_jobs.main(["--config", str(new), "--source", str(source), "--scheduler", "slurm"]) == 2
    capsys.readouterr()
    assert not Path("/scratch3").exists()


def test_a_config_that_would_not_compile_is_not_written(tmp_path, monkeypatch, capsys):
    old, source, mpath = _site(tmp_path, "edison")
    real = migrate.render
    monkeypatch.setattr(migrate, "render", lambda m: real(m) + "\n# one\nnot python (\n")
    new = tmp_path / "new.py"
    assert cli_migrate.main([str(old), "--source", str(source), "--fetch-manifest", str(mpath), "-o", str(new)]) == 2
    err = capsys.readouterr().err
    assert "does not compile" in err and "nothing was written" in err
    assert not new.exists()


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

"""Campaign identity: what the fingerprint covers, the tile check, the balrog-push filter."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from balrog_runner.campaign import identity as campaign_id
from balrog_runner.db import CatalogSet
from balrog_runner.measurement import astromatic, measure
from balrog_runner.node.settings import RunSettings
from balrog_runner.sky.positions import Positions

TILE = "DES2359+0001"
FILES = {  # RunSettings path -> shipped file copied into the test directory
    "sex-config": astromatic.DEFAULT_SEX_CONFIG, "sex-param": astromatic.LIGHT_SEX_PARAM,
    "sex-filter": astromatic.DEFAULT_FILTER, "sex-nnw": astromatic.DEFAULT_NNW,
    "swarp-config": astromatic.DEFAULT_SWARP_CONFIG,
}


def positions(n: int = 100, shift: float = 0.0) -> Positions:
    index = np.arange(10**8, 10**8 + n, dtype=np.int64)
    return Positions(TILE, np.linspace(0.1, 0.2, n) + shift, np.linspace(-0.1, 0.1, n), index)


def copy_files(where: Path) -> dict[str, Path]:
    where.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, src in FILES.items():
        out[key] = where / f"{key}{src.suffix}"
        shutil.copyfile(src, out[key])
    for key in ("pyconfig", "population"):
        out[key] = where / f"{key}.py"
        out[key].write_text(f"# {key}\n")
    return out


def settings(files: dict[str, Path], **kw) -> RunSettings:
    base = RunSettings(
        outdir=Path("/nonexistent"), posdir=Path("/nonexistent"), bands=("g", "r", "i", "z"), ngal=20,
        realizations=5, sextractor=astromatic.SextractorSetup(
            config=files["sex-config"], param=files["sex-param"], filter=files["sex-filter"], nnw=files["sex-nnw"]),
        swarp=astromatic.SwarpSetup(config=files["swarp-config"]), pyconfig=files["pyconfig"],
        population=files["population"], dbname="camp", release="y3a2",
    )
    return dataclasses.replace(base, **kw)


def test_fingerprint_covers_every_input_by_content_not_path(tmp_path):
    files = copy_files(tmp_path / "a")
    pos = positions()
    ref = campaign_id.identity_for_tile(settings(files), pos)
    assert ref.campaign == "camp" and len(ref.fingerprint) == campaign_id.FINGERPRINT_HEX
    # Copies of the same files elsewhere, another realization subset, another database: same fingerprint.
    moved = copy_files(tmp_path / "b")
    same = campaign_id.identity_for_tile(settings(moved, realization_list=(1, 3), db={"url": "x"}, ppn=8), pos)
    assert same.fingerprint == ref.fingerprint
    # Each input changes it, and the per-input digests name which one.
    changes = {
        "ngal": dict(ngal=25), "realizations": dict(realizations=4), "bands": dict(bands=("g", "r", "i")),
        "seed-offset": dict(seed_offset=7), "noise": dict(noise=False), "star-fraction": dict(star_fraction=0.2),
        "release": dict(release="y6a2"), "masked-positions": dict(masked_positions="skip"),
    }
    for key, kw in changes.items():
        other = campaign_id.identity_for_tile(settings(files, **kw), pos)
        assert other.fingerprint != ref.fingerprint, key
        assert [k for k in sorted({*ref.inputs, *other.inputs}) if ref.inputs.get(k) != other.inputs.get(k)] == [key]
    for key in (*FILES, "pyconfig", "population"):
        edited = copy_files(tmp_path / f"edit-{key}")
        with open(edited[key], "ab") as fh:
            fh.write(b"\n# edited\n")
        other = campaign_id.identity_for_tile(settings(edited), pos)
        assert [k for k in ref.inputs if ref.inputs[k] != other.inputs[k]] == [key]
    for other_pos in (positions(shift=1e-12), positions(n=101)):
        other = campaign_id.identity_for_tile(settings(files), other_pos)
        assert [k for k in ref.inputs if ref.inputs[k] != other.inputs[k]] == ["positions"]
    assert campaign_id.identity_for_tile(settings(files, pyconfig=None), pos).inputs["pyconfig"] == "none"


def test_lattice_campaigns_do_not_depend_on_ngal(tmp_path):
    """A lattice file fixes each realization's rows: run['ngal'] is unused, so editing it is no new campaign."""
    files = copy_files(tmp_path / "a")
    lattice = dataclasses.replace(positions(), row_realization=np.repeat(np.arange(4, dtype=np.int32), 25))
    ref = campaign_id.identity_for_tile(settings(files), lattice)
    assert campaign_id.identity_for_tile(settings(files, ngal=999), lattice).fingerprint == ref.fingerprint
    assert campaign_id.identity_for_tile(settings(files, ngal=999), positions()).fingerprint != ref.fingerprint


def write_cat(path: Path, header: dict | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return measure.write_catalog(path, np.zeros(2, dtype=[("balrog_index", "i8")]), header=header)


def test_check_tile(tmp_path):
    ident = campaign_id.CampaignIdentity("camp", "a" * 16, {"ngal": "1", "pyconfig": "2"})
    status = ident.status_entries()
    tdir = tmp_path / TILE
    mine = write_cat(tdir / "catalogs" / f"{TILE}_r0000_sim.fits", ident.header())
    campaign_id.check_tile(tdir, TILE, ident, status, [mine], [tdir / "nosim" / "x.fits"])
    # another campaign in status.json
    other = campaign_id.CampaignIdentity("else", "b" * 16, {"ngal": "1", "pyconfig": "2"})
    with pytest.raises(campaign_id.ForeignCampaignError, match=r"holds outputs of campaign 'else' \(fingerprint b{16}\); "
                       r"this campaign is 'camp' \(fingerprint a{16}\)"):
        campaign_id.check_tile(tdir, TILE, ident, other.status_entries(), [mine])
    # same campaign, other inputs: the message names them
    changed = campaign_id.CampaignIdentity("camp", "c" * 16, {"ngal": "9", "pyconfig": "2"})
    with pytest.raises(campaign_id.ForeignCampaignError, match=r"made from other inputs \(ngal\)"):
        campaign_id.check_tile(tdir, TILE, ident, changed.status_entries(), [mine])
    # a catalog of another campaign, status.json lost
    theirs = write_cat(tdir / "catalogs" / f"{TILE}_r0001_sim.fits", other.header())
    with pytest.raises(campaign_id.ForeignCampaignError, match=f"holds catalogs of campaign 'else'.*{re.escape(theirs.name)}"):
        campaign_id.check_tile(tdir, TILE, ident, {}, [mine, theirs])
    # catalogs written before identities existed: foreign, never adopted
    legacy = write_cat(tdir / "catalogs" / f"{TILE}_r0002_sim.fits", {"TILENAME": TILE})
    with pytest.raises(campaign_id.ForeignCampaignError, match="without a campaign identity"):
        campaign_id.check_tile(tdir, TILE, ident, status, [mine, legacy])
    # a nosim catalog with no identity in status.json
    nosim = write_cat(tdir / "nosim" / f"{TILE}_nosim_all.fits", None)
    with pytest.raises(campaign_id.ForeignCampaignError, match=f"holds {re.escape(nosim.name)} of a run without"):
        campaign_id.check_tile(tdir, TILE, ident, {}, [], [nosim])
    campaign_id.check_tile(tdir, TILE, ident, status, [], [nosim])  # recorded as ours: fine
    assert mine.exists() and theirs.exists() and legacy.exists() and nosim.exists()  # nothing deleted


def test_select_campaign_for_push(tmp_path):
    def cset(j: int, header: dict | None) -> CatalogSet:
        p = write_cat(tmp_path / f"{TILE}_r{j:04d}_truth.fits", header)
        return CatalogSet(TILE, j, p, p, p)

    sets = [cset(0, {"CAMPAIGN": "camp", "CAMPFP": "x"}), cset(1, {"CAMPAIGN": "else", "CAMPFP": "y"}),
            cset(2, None), cset(3, {"CAMPAIGN": "else", "CAMPFP": "y"})]
    kept, others = campaign_id.select_campaign(sets, "camp")
    assert [s.realization for s in kept] == [0, 2] and others == {"else": 2}
    assert campaign_id.select_campaign(sets, None) == (sets, {})

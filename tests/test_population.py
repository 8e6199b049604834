"""Object properties: default model statistics, seeds, catalog sampling, pyconfig hooks."""

from __future__ import annotations

import argparse
import textwrap

import numpy as np
import pytest
from astropy.table import Table

from balrog_runner.errors import ConfigError, InputFileError
from balrog_runner.injection.draw import DrawOptions
from balrog_runner.injection.population import (
    DEFAULT_BANDS,
    OBJTYPE_GALAXY,
    OBJTYPE_STAR,
    PopulationModel,
    load_pyconfig,
    make_objects,
    read_catalog,
    realization_seeds,
    sample_default,
)


def build(n: int = 500, indexstart: int = 0, **kw):
    rng = np.random.default_rng(99)
    ra = rng.uniform(10.0, 10.5, n)
    dec = rng.uniform(-1.0, -0.5, n)
    return make_objects(ra, dec, indexstart + np.arange(n), bands=kw.pop("bands", DEFAULT_BANDS),
                        indexstart=indexstart, tilename="DES0041-0041", realization=3, **kw)


def test_seeds_derive_from_indexstart():
    assert realization_seeds(1000) == realization_seeds(1000)
    p1, n1 = realization_seeds(1000)
    p2, n2 = realization_seeds(2000)
    assert len({p1, n1, p2, n2}) == 4
    assert all(0 <= s < 2**63 for s in (p1, n1, p2, n2))
    with pytest.raises(ConfigError, match="negative"):
        realization_seeds(-1)


def test_same_realization_same_objects_other_realization_differs():
    a, b, c = build(indexstart=1000), build(indexstart=1000), build(indexstart=1500)
    for k in a.columns:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["mag_i"], c["mag_i"])
    assert a.seed == realization_seeds(1000)[0] and a.indexstart == 1000 and a.realization == 3


def test_default_model_statistics():
    rng = np.random.default_rng(5)
    n = 40000
    cols = sample_default(rng, n, DEFAULT_BANDS)
    star = cols["objtype"] == OBJTYPE_STAR
    gal = ~star
    assert star.mean() == pytest.approx(0.1, abs=0.01)
    # Galaxy counts rise ~0.33 dex/mag (fit over 20-25.5 mag).
    mi = cols["mag_i"][gal]
    assert mi.min() >= 18.0 and mi.max() < 26.0
    hist, edges = np.histogram(mi, bins=np.arange(20.0, 25.51, 0.5))
    slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(hist), 1)[0]
    assert slope == pytest.approx(0.33, abs=0.04)
    # Colours: galaxy means near the model's, with scatter.
    gr = (cols["mag_g"] - cols["mag_r"])[gal]
    ri = (cols["mag_r"] - cols["mag_i"])[gal]
    assert gr.mean() == pytest.approx(0.75, abs=0.03) and gr.std() == pytest.approx(0.35, abs=0.03)
    assert ri.mean() == pytest.approx(0.40, abs=0.02)
    assert np.corrcoef(gr, ri)[0, 1] > 0.3
    # Stars lie on a locus: r-i grows with g-r.
    assert np.corrcoef((cols["mag_g"] - cols["mag_r"])[star], (cols["mag_r"] - cols["mag_i"])[star])[0, 1] > 0.8
    # Fainter galaxies are smaller.
    hlr = cols["hlr_disk"][gal]
    assert np.median(hlr[mi < 21]) > 1.5 * np.median(hlr[mi > 24.5])
    # Bulge + disk: n fixed per component, fractions sum to one, shapes in range.
    assert np.all(cols["sersic_n_disk"][gal] == 1.0) and np.all(cols["sersic_n_bulge"][gal] == 4.0)
    np.testing.assert_allclose(cols["flux_frac_disk"][gal] + cols["flux_frac_bulge"][gal], 1.0)
    assert 0.15 < cols["flux_frac_bulge"][gal].mean() < 0.35
    for c in ("disk", "bulge"):
        q = cols[f"q_{c}"][gal]
        assert q.min() >= 0.1 and q.max() <= 1.0
        assert cols[f"beta_{c}"][gal].min() >= 0.0 and cols[f"beta_{c}"][gal].max() < 180.0
    # Stars carry no component light.
    assert np.all(cols["flux_frac_disk"][star] == 0) and np.all(np.isnan(cols["sersic_n_bulge"][star]))


def test_default_counts_follow_the_published_i_band_slope():
    """d log10 N / dm = 0.33 dex/mag over 20 < i < 24 (Metcalfe et al. 2000; CFDF 2001)."""
    cols = sample_default(np.random.default_rng(8), 300_000, ("i",), PopulationModel(star_fraction=0.0))
    hist, edges = np.histogram(cols["mag_i"], bins=np.arange(20.0, 24.01, 0.5))
    slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(hist), 1)[0]
    assert slope == pytest.approx(0.33, abs=0.01)


def test_single_sersic_profile_has_an_n_distribution_on_a_grid():
    model = PopulationModel(profile="sersic", star_fraction=0.0)
    cols = sample_default(np.random.default_rng(1), 5000, ("i",), model)
    n = cols["sersic_n_sersic"]
    assert n.min() >= 0.3 and n.max() <= 6.2
    np.testing.assert_allclose(n * 10, np.round(n * 10), atol=1e-9)
    assert len(np.unique(n)) > 10
    assert np.median(n) == pytest.approx(1.5, abs=0.15)


def test_model_parameters_are_checked():
    with pytest.raises(ConfigError, match="profile"):
        PopulationModel(profile="exponential")
    with pytest.raises(ConfigError, match="star_fraction"):
        PopulationModel(star_fraction=1.5)


def test_unknown_band_needs_a_catalog_or_hook():
    with pytest.raises(ConfigError, match="mag_VR"):
        build(bands=("g", "VR"))


def _catalog(tmp_path, nrows=50):
    rng = np.random.default_rng(7)
    t = Table()
    t["ID"] = np.arange(nrows)
    t["MAGI"] = rng.uniform(19, 25, nrows)
    t["hlr_disk"] = rng.uniform(0.2, 2.0, nrows)
    t["q_disk"] = rng.uniform(0.3, 1.0, nrows)
    t["sersic_n_disk"] = np.full(nrows, 1.0)
    t["beta_disk"] = rng.uniform(0, 180, nrows)
    t["flux_frac_disk"] = np.ones(nrows)
    t["objtype"] = np.zeros(nrows, dtype=np.int16)
    path = tmp_path / "cat.fits"
    t.write(path)
    return path, t


def test_catalog_rows_are_sampled_jointly(tmp_path):
    path, t = _catalog(tmp_path)
    cat = read_catalog(path, {"mag_i": "MAGI"})
    assert "id" not in cat and set(cat) >= {"mag_i", "hlr_disk", "q_disk"}
    objs = build(n=200, catalog=cat)
    rows = objs["catalog_row"]
    np.testing.assert_array_equal(objs["mag_i"], np.asarray(t["MAGI"])[rows])
    np.testing.assert_array_equal(objs["hlr_disk"], np.asarray(t["hlr_disk"])[rows])
    np.testing.assert_array_equal(objs["q_disk"], np.asarray(t["q_disk"])[rows])
    assert objs.components == ("disk",)  # the model's bulge is not mixed in
    # Other bands follow the catalog's i magnitude through the default colours.
    assert np.corrcoef(objs["mag_i"], objs["mag_g"])[0, 1] > 0.8
    # Without replacement: distinct rows; too many objects is an error.
    unique = build(n=50, catalog=cat, catalog_replace=False)
    assert len(np.unique(unique["catalog_row"])) == 50
    with pytest.raises(ConfigError, match="without replacement"):
        build(n=51, catalog=cat, catalog_replace=False)


def test_catalog_errors(tmp_path):
    path, _ = _catalog(tmp_path)
    with pytest.raises(InputFileError, match="no column 'MAG_AUTO_I'"):
        read_catalog(path, {"mag_i": "MAG_AUTO_I"})
    with pytest.raises(InputFileError, match="cannot read catalog"):
        read_catalog(tmp_path / "absent.fits")
    partial = {"mag_r": np.array([20.0, 21.0])}
    with pytest.raises(ConfigError, match="not for every band"):
        build(n=5, catalog=partial)


def _write(tmp_path, text, name="pyconfig.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_pyconfig_hooks(tmp_path):
    path = _write(tmp_path, """
        import numpy as np

        def CustomArgs(parser):
            parser.add_argument("--shear", type=float, default=0.0, help="constant g1")

        def CustomParseArgs(args):
            if abs(args.shear) >= 1:
                raise ValueError("--shear must be < 1")

        def SimulationRules(rng, n, bands, defaults):
            return {"g1": np.full(n, 0.02), "mag_i": defaults["mag_i"] - 1.0,
                    "my_tag": rng.integers(0, 10, n)}

        def GalsimParams(band):
            return {"poisson_noise": band != "Y", "trunc_factor": 6.0}

        def SextractorConfigs(band):
            return {"detect_thresh": 1.2, "PHOT_APERTURES": [5, 10]}
    """)
    cfg = load_pyconfig(path)
    assert set(cfg.hooks) == {"CustomArgs", "CustomParseArgs", "SimulationRules", "GalsimParams", "SextractorConfigs"}
    parser = argparse.ArgumentParser()
    cfg.custom_args(parser)
    args = parser.parse_args(["--shear", "0.5"])
    cfg.custom_parse_args(args)
    with pytest.raises(ConfigError, match=r"pyconfig .*pyconfig\.py: CustomParseArgs raised ValueError: --shear must be < 1"):
        cfg.custom_parse_args(parser.parse_args(["--shear", "2"]))
    base = build(indexstart=10)
    objs = build(indexstart=10, pyconfig=cfg)
    assert np.all(objs["g1"] == 0.02)
    np.testing.assert_allclose(objs["mag_i"], base["mag_i"] - 1.0)
    assert "my_tag" in objs.columns
    np.testing.assert_array_equal(build(indexstart=10, pyconfig=cfg)["my_tag"], objs["my_tag"])
    assert DrawOptions.from_mapping(cfg.galsim_params("Y")) == DrawOptions(poisson_noise=False, trunc_factor=6.0)
    assert cfg.sextractor_configs("r") == {"DETECT_THRESH": "1.2", "PHOT_APERTURES": "5,10"}


def test_pyconfig_that_raises_names_file_and_hook(tmp_path):
    path = _write(tmp_path, """
        def SimulationRules(rng, n, bands, defaults):
            return {"hlr_disk": defaults["hlr_disk"] * [][0]}
    """)
    cfg = load_pyconfig(path)
    with pytest.raises(ConfigError, match=r"pyconfig\.py: SimulationRules raised IndexError"):
        build(pyconfig=cfg)
    broken = _write(tmp_path, "import not_a_module_anywhere\n", name="broken.py")
    with pytest.raises(ConfigError, match=r"broken\.py: import failed: ModuleNotFoundError"):
        load_pyconfig(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_pyconfig(tmp_path / "nope.py")


def test_pyconfig_results_are_checked(tmp_path):
    cases = {
        "ra": 'return {"ra": defaults["ra"] + 1}',
        "shape": 'return {"g1": np.zeros(n + 1)}',
        "sersic_n_bulge outside": 'return {"sersic_n_bulge": np.full(n, 7.0)}',
        "sum to 1": 'return {"flux_frac_bulge": np.full(n, 0.9), "flux_frac_disk": np.full(n, 0.9)}',
        r"shear \|g\|": 'return {"g1": np.full(n, 1.5)}',
        "a dict": "return [1, 2]",
    }
    for k, (match, body) in enumerate(cases.items()):
        path = _write(tmp_path, f"import numpy as np\ndef SimulationRules(rng, n, bands, defaults):\n    {body}\n", name=f"p{k}.py")
        with pytest.raises(ConfigError, match=match):
            build(n=50, pyconfig=load_pyconfig(path))
    bad_sex = _write(tmp_path, 'def SextractorConfigs(band):\n    return {"DETECT THRESH": "1"}\n', name="sex.py")
    with pytest.raises(ConfigError, match="SExtractor parameter name"):
        load_pyconfig(bad_sex).sextractor_configs("r")


def test_positions_checked():
    with pytest.raises(ConfigError, match="lengths differ"):
        make_objects(np.zeros(3), np.zeros(2), np.arange(3), bands=("r",), indexstart=0)
    with pytest.raises(ConfigError, match="non-finite"):
        make_objects(np.array([np.nan]), np.zeros(1), np.arange(1), bands=("r",), indexstart=0)
    objs = make_objects(np.zeros(4), np.zeros(4), np.arange(4), bands=("r",), indexstart=0)
    assert set(np.unique(objs["objtype"])) <= {OBJTYPE_GALAXY, OBJTYPE_STAR}


def test_hook_sersic_indices_are_rounded_to_the_grid(tmp_path):
    from balrog_runner.injection.catalog_columns import round_sersic_n

    path = _write(tmp_path, """
        import numpy as np

        def SimulationRules(rng, n, bands, defaults):
            return {"sersic_n_bulge": rng.uniform(2.0, 5.0, n)}
    """)
    objs = build(n=200, pyconfig=load_pyconfig(path))
    gal = objs["objtype"] == OBJTYPE_GALAXY
    nb = objs["sersic_n_bulge"][gal]
    np.testing.assert_allclose(nb * 10, np.round(nb * 10), atol=1e-9)
    assert 10 < len(np.unique(nb)) <= 31
    got = round_sersic_n(np.array([0.27, 1.04999, 1.05001, 6.24, 7.0, np.nan]))
    np.testing.assert_allclose(got, [0.3, 1.0, 1.1, 6.2, 7.0, np.nan])
    np.testing.assert_array_equal(round_sersic_n(np.array([1.234]), step=0), [1.234])

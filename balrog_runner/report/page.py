"""The report's page: ``summary.json``, the HTML page and ``report.pdf`` of a campaign.

The numbers are :mod:`.numbers`'s and the catalogs are read by :mod:`.load`; this module
only lays them out, so a page never shows a value the summary does not hold.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from . import plots as report_plots
from . import stats as report_stats
from .load import CampaignData, load_campaign
from .numbers import (
    bias_bright,
    bootstrap_weights,
    mag_edges,
    per_tile_table,
    plot_bias,
    plot_completeness,
    plot_offsets,
    plot_skymap,
    provenance,
    reference_band,
    star_galaxy,
)

log = logging.getLogger(__name__)


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{int(hours)}h {int(minutes):02d}m {secs:04.1f}s" if hours else f"{int(minutes)}m {secs:04.1f}s"


def write_report(outdir: str | Path, report_dir: str | Path | None = None) -> Path:
    """Make every plot, ``summary.json``, the HTML page and ``report.pdf`` for the campaign in ``outdir``.

    Returns the page.
    """
    data = load_campaign(outdir)
    report_dir = Path(report_dir) if report_dir else data.outdir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    from ..measurement.blends import CLASS_NAMES

    weights = bootstrap_weights(data)
    edges = mag_edges(data)
    ref = reference_band(data.bands)
    curves = plot_completeness(data, report_dir / "completeness.png", weights)
    bias_curves = plot_bias(data, report_dir / "photometry.png", weights)
    bias = bias_bright(data)
    median_offset = plot_offsets(data, report_dir / "offsets.png")
    skymap = plot_skymap(data, report_dir / "skymap.png")
    m = data.matches[ref]
    by_class = report_plots.split_panels(m, data.blend_class, CLASS_NAMES, report_plots.CLASS_COLOURS, data.group,
                                         edges, weights, report_dir / "blends.png", "blend class")
    by_type = report_plots.split_panels(m, data.objtype, report_plots.OBJTYPE_NAMES, report_plots.TYPE_COLOURS,
                                        data.group, edges, weights, report_dir / "objtype.png", "object type")
    scatter = report_plots.magnitude_scatter(m, data.objtype, report_dir / "magnitudes.png")
    by_size = report_plots.completeness_by_size(m, data.size_arcsec, data.objtype, data.group, weights,
                                                report_dir / "size.png")
    sg_png = report_dir / "stargalaxy.png"
    sg = star_galaxy(data, ref, edges, weights, sg_png)
    if not sg["available"]:
        sg_png.unlink(missing_ok=True)  # a figure from an earlier report of other catalogs is not this one's

    numbers = {
        "tiles": len(data.tiles),
        "realizations": data.n_realizations,
        "objects_injected": data.n_injected,
        "objects_drawn": data.n_drawn,
        "objects_on_masked_pixels": data.n_masked,
        "objects_recovered": data.n_recovered,
        "recovered_fraction": data.n_recovered / data.n_drawn if data.n_drawn else float("nan"),
        "median_offset_arcsec": median_offset,
        "seconds_spent": data.seconds_spent,
        "m50": {b: c["m50"] for b, c in curves.items()},
        "m50_error": {b: c["m50_error"] for b, c in curves.items()},
        "bias_bright": {b: {"median": v[0], "scatter": v[1]} for b, v in bias.items()},
        "missing": {"tiles": data.missing.tiles, "realizations_failed": data.missing.failed,
                    "realizations_incomplete": data.missing.incomplete, "realizations_lost": data.missing.lost},
        "reference_band": ref,
        "bootstrap": {"unit": "realization", "replicas": int(len(weights)), "seed": report_stats.BOOTSTRAP_SEED,
                      "groups": len(data.realizations), "error": "std (ddof=1) of the replicas"},
        "magnitude_edges": [float(e) for e in edges],
        "completeness": curves,
        "bias": bias_curves,
        "by_blend_class": by_class,
        "blend_classes_from": data.match_sources,
        "by_objtype": by_type,
        "star_galaxy": sg,
        "magnitude_scatter_objects": scatter,
        "completeness_by_size": by_size,
        "per_tile": per_tile_table(data),
        "skymap": skymap,
        "provenance": provenance(data),
    }
    atomic_write_text(report_dir / "summary.json", json.dumps(numbers, indent=2, default=float) + "\n")
    tables = report_tables(data, numbers)
    figures = [(name, caption) for name, caption in figure_captions(numbers) if (report_dir / name).exists()]
    from . import pdf as report_pdf

    report_pdf.write_pdf(report_dir / "report.pdf", "Balrog campaign report", str(data.outdir), tables,
                         [(report_dir / name, caption) for name, caption in figures])
    page = report_dir / "index.html"
    atomic_write_text(page, _html_page(data, tables, figures, numbers))
    log.info("report written to %s (and report.pdf)", page)
    return page


def _fmt(value: float, spec: str) -> str:
    """A number for a table; NaN (not measured) as an en dash."""
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def _percent(fraction: float) -> str:
    """A fraction as a percentage; NaN (nothing to divide by) as an en dash."""
    return "–" if not np.isfinite(fraction) else f"{100 * fraction:.1f}%"


def _one(values: Sequence[str]) -> str:
    """Distinct header values as one cell: ``not recorded`` when none, all of them when several."""
    return ", ".join(values) if values else "not recorded"


def report_tables(data: CampaignData, numbers: dict):
    """The tables of the page and of the PDF's first page(s), as text cells (one formatting for both)."""
    from .pdf import Table

    nan = float("nan")
    prov = numbers["provenance"]
    rows = [
        ["Tiles", ", ".join(data.tiles)],
        ["Realizations", str(data.n_realizations)],
        ["Objects injected", f"{data.n_injected:,}"],
        ["Objects drawn and counted (not on a masked pixel)", f"{data.n_drawn:,}"],
        ["Drawn on a masked pixel (left out)", f"{data.n_masked:,}"],
        ["Objects recovered", f"{data.n_recovered:,} ({100 * numbers['recovered_fraction']:.1f}%)"],
        ["Median position offset", f"{numbers['median_offset_arcsec']:.3f} arcsec"],
        ["Time spent in realizations", _format_seconds(data.seconds_spent)],
        ["Error bars", f"bootstrap over {numbers['bootstrap']['groups']} realizations, "
                       f"{numbers['bootstrap']['replicas']} replicas, seed {numbers['bootstrap']['seed']}"],
    ]
    if data.missing:
        rows.append(["Missing (partial campaign)", data.missing.describe()])
    cards = prov["catalogs"]
    config_files = ", ".join(f"{k} {'/'.join(v)}" for k, v in prov["config_files"].items())
    prov_rows = [
        ["Release", ", ".join(prov["release"]) or _one(cards.get("RELEASE", []))],
        ["Campaign", ", ".join(prov["campaign"]) or _one(cards.get("CAMPAIGN", []))],
        ["Config digest (CAMPFP; per tile if several)", _one(prov["config_digest"])],
        ["SExtractor (catalogs)", _one(prov["sextractor"])],
        ["SWarp (catalogs)", _one(prov["swarp"])],
        ["balrog_runner, GalSim (catalogs)",
         f"{_one(cards.get('BALRVER', []))}; GalSim {_one(cards.get('GALSIMV', []))}"],
        ["Configuration file digests", config_files or "not recorded"],
        ["Report software", ", ".join(f"{k} {v}" for k, v in prov["versions"].items())],
        ["Report made", prov["date"]],
    ]
    band_rows = [[b, _fmt(numbers["m50"].get(b, nan), ".2f") + " ± " + _fmt(numbers["m50_error"].get(b, nan), ".2f"),
                  _fmt(numbers["bias_bright"].get(b, {}).get("median", nan), "+.3f"),
                  _fmt(numbers["bias_bright"].get(b, {}).get("scatter", nan), ".3f")] for b in data.bands]
    tile_rows = [[t, str(v["realizations"]), f"{v['objects_drawn']:,}", f"{100 * v['recovered_fraction']:.1f}%",
                  *(_fmt(v["m50"].get(b, nan), ".2f") for b in data.bands), _format_seconds(v["seconds"])]
                 for t, v in numbers["per_tile"].items()]
    split_rows = [[what, name, f"{v['objects']:,}", f"{100 * v['recovered_fraction']:.1f}%", _fmt(v["m50"], ".2f")]
                  for what, split in (("blend class", numbers["by_blend_class"]), ("object type", numbers["by_objtype"]))
                  for name, v in split.items()]
    src = numbers["blend_classes_from"]
    ref = numbers["reference_band"]
    tables = [
        Table("Campaign", rows),
        Table("Provenance", prov_rows),
        Table("Per band", band_rows, ["band", "50% completeness [mag]", "median Δmag (<22) [mag]", "scatter (<22) [mag]"]),
        Table("Per tile", tile_rows, ["tile", "realizations", "drawn", "recovered",
                                      *(f"m50 {b}" for b in data.bands), "time"], note="m50: 50% completeness [mag]."),
        Table(f"By blend class and object type (band {ref})", split_rows,
              ["split", "class", "drawn", "recovered", "m50 [mag]"],
              note=f"Blend classes from {src['file']} match table(s), {src['recomputed']} recomputed from the "
                   f"tile's nosim catalog, {src['unknown']} unknown (no nosim catalog)."),
    ]
    sg = numbers["star_galaxy"]
    title = f"Star/galaxy separation (band {sg['band']})"
    if sg["available"]:
        sg_rows = [[name, f"{sg[name]['true']:,}", f"{sg[name]['classified']:,}", f"{sg[name]['both']:,}",
                    _percent(sg[name]["completeness"]), _percent(sg[name]["purity"])]
                   for name in ("galaxies", "stars")]
        tables.append(Table(title, sg_rows, ["class", "true (recovered)", "classified", "true and classified",
                                             "completeness", "purity"],
                            note=f"{sg['classifier']}: galaxy > {sg['galaxy_above']}, star |value| < "
                                 f"{sg['star_abs_below']} ({sg['convention']}). Recovered objects of "
                                 "known truth type, all magnitudes; per magnitude in the figure."))
    else:
        tables.append(Table(title, [], ["class"], note=f"Not available: {sg['reason']}."))
    return tables


def figure_captions(numbers: dict) -> list[tuple[str, str]]:
    """``(png name, caption)`` of every figure, in page order."""
    ref = numbers["reference_band"]
    sg = numbers["star_galaxy"]
    return [
        ("completeness.png", "Completeness: recovered / drawn per true-magnitude bin; bootstrap errors."),
        ("photometry.png", "MAG_AUTO - true magnitude (median, 1.4826 MAD) of recovered objects not within 2 px "
                           "of a pre-existing detection; bootstrap errors."),
        ("blends.png", f"Band {ref}: completeness and bias of isolated objects and of objects within 2 arcsec "
                       "of a fainter / brighter pre-existing (nosim) detection."),
        ("objtype.png", f"Band {ref}: completeness and bias of stars and galaxies."),
        ("stargalaxy.png", f"Band {ref}: completeness and purity of the galaxy and star classes of "
                           f"{sg['classifier']} (galaxy > {sg['galaxy_above']}, star |value| < {sg['star_abs_below']}; "
                           "DES Y1 MODEST_CLASS) for recovered objects, against measured magnitude; bootstrap errors."),
        ("magnitudes.png", f"Measured MAG_AUTO_{ref.upper()} against injected magnitude, stars and galaxies."),
        ("size.png", "Galaxy completeness against half-light radius and mean surface brightness."),
        ("offsets.png", "Offset between the detection (riz image, windowed centroid) and the injected position."),
        ("skymap.png", "Detection efficiency on the sky (RA, Dec in degrees) over the tiles' unique areas."),
    ]


def _html_table(table) -> str:
    esc = html.escape
    head = f"<h2>{esc(table.title)}</h2>" if table.title != "Campaign" else ""
    note = f"<p>{esc(table.note)}</p>" if table.note else ""
    if table.header is None:
        body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in table.rows)
    elif not table.rows:
        return head + note
    else:
        body = ("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.header) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in table.rows))
    return f"{head}{note}<table>{body}</table>\n"


#: Figures of two panels side by side: at the page's 480 px their labels were unreadable.
WIDE_FIGURES = ("size.png",)


def _html_page(data: CampaignData, tables: list, figures: list[tuple[str, str]], numbers: dict) -> str:
    esc = html.escape
    figure_html = "".join(
        f'<figure{" class=wide" if name in WIDE_FIGURES else ""}><img src="{name}" alt="{esc(caption)}">'
        f'<figcaption>{esc(caption)}</figcaption></figure>'
        for name, caption in figures
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Balrog campaign report: {esc(data.outdir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}figure{{display:inline-block;margin:1em;width:480px;vertical-align:top}}figure.wide{{width:980px}}
img{{width:100%}}</style></head><body>
<h1>Balrog campaign report</h1>
<p>Campaign directory: <code>{esc(str(data.outdir))}</code> &middot; <a href="report.pdf">report.pdf</a>
(these tables and every figure, one per page)</p>
{"".join(_html_table(t) for t in tables)}
<h2>Plots</h2>
{figure_html}
</body></html>
"""

"""The report of a campaign: ``summary.json``, the figures, ``index.html``, ``report.pdf``, ``per_tile.csv``.

The campaign is counted from its files (:mod:`.from_files`: the realizations' summaries,
else their catalogs) or from its database (:mod:`.from_db`), its numbers computed
(:mod:`.numbers`) and laid out here: the page is a jinja2 template
(``report/templates/report.html.j2``), the PDF the same tables and the same figures drawn
as vectors (:mod:`.pdf`). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..errors import InputFileError
from . import numbers as report_numbers
from . import plots
from .from_files import DEFAULT_NSIDE

log = logging.getLogger(__name__)

SOURCES = ("files", "db")
#: Tiles listed in the PDF's per-tile table (all are in the page and in per_tile.csv).
PDF_TILE_ROWS = 40


@dataclass
class Table:
    """One table of the report: ``header`` None for a key/value table (two columns)."""

    title: str
    rows: list[list[str]]
    header: list[str] | None = None
    note: str = ""
    #: Shown folded on the page (``<details>``), e.g. the per-bin counts.
    folded: bool = False
    #: Rows shown in the PDF (None: all).
    pdf_rows: int | None = None


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{int(hours)}h {int(minutes):02d}m {secs:04.1f}s" if hours else f"{int(minutes)}m {secs:04.1f}s"


def _fmt(value, spec: str) -> str:
    """A number for a table; NaN or None (not measured) as an en dash."""
    return "–" if value is None or not np.isfinite(value) else format(value, spec)


def _pm(value, error, spec: str) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{format(value, spec)} ± {_fmt(error, spec.lstrip('+'))}"


def _percent(fraction: float) -> str:
    return "–" if fraction is None or not np.isfinite(fraction) else f"{100 * fraction:.1f}%"


def title_of(numbers: dict) -> str:
    name = numbers["campaign"]
    return f"Balrog campaign {name}" if name else "Balrog campaign (name not recorded)"


def _json_ready(value):
    """``summary.json``: the numbers without the figures' arrays (keys starting with ``_``)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return [_json_ready(v) for v in value.tolist()]
    return value


def campaign_rows(numbers: dict) -> list[list[str]]:
    src = numbers["source"]
    read = ", ".join(f"{n:,} from {k}" for k, n in src["read_from"].items())
    rows = [
        ["Campaign", numbers["campaign"] or "not recorded"],
        ["Read from", f"{src['kind']} {src['where']} ({read})"],
        ["Tiles", f"{numbers['tiles']:,}"],
        ["Realizations", f"{numbers['realizations']:,}" + (
            f" of {numbers['realizations_expected']:,} planned" if numbers["partial"] else "")],
        ["Objects injected", f"{numbers['objects_injected']:,}"],
        ["Objects drawn off masked pixels", f"{numbers['objects_drawn']:,}"],
        ["Drawn on masked pixels (left out)", f"{numbers['objects_on_masked_pixels']:,}"],
        ["Objects recovered", f"{numbers['objects_recovered']:,} ({_percent(numbers['recovered_fraction'])})"],
        ["Median position offset", f"{_fmt(numbers['median_offset_arcsec'], '.3f')} arcsec"],
        ["Time spent in realizations", _format_seconds(numbers["seconds_spent"])],
        ["Error bars", f"completeness: {numbers['interval']['kind']}, {numbers['interval']['level']:.0%}; "
                       f"medians: bootstrap over {numbers['bootstrap']['batches']} batch(es) of realizations "
                       f"(indexstart mod 61), {numbers['bootstrap']['replicas']} replicas, seed "
                       f"{numbers['bootstrap']['seed']}; bins of fewer than {numbers['min_count']} objects not drawn"],
    ]
    if numbers["partial"]:
        m = numbers["missing"]
        rows.append(["Missing (partial campaign)", _missing_text(m)])
    return rows


def _missing_text(m: dict) -> str:
    parts = []
    if m["tiles"]:
        shown = ", ".join(m["tiles"][:5]) + (", ..." if len(m["tiles"]) > 5 else "")
        parts.append(f"{len(m['tiles'])} tile(s) without catalogs ({shown})")
    n = m["realizations_failed"] + m["realizations_incomplete"] + m["realizations_lost"] + m["realizations_not_run"]
    if n:
        detail = [f"{m['realizations_failed']} failed per status.json",
                  f"{m['realizations_incomplete']} with incomplete catalogs",
                  f"{m['realizations_lost']} {m['lost_means']}"]
        if m["realizations_not_run"]:
            detail.append(f"{m['realizations_not_run']} planned but not run")
        parts.append(f"{n} realization(s) missing ({', '.join(detail)})")
    return "; ".join(parts) or "nothing missing"


def report_tables(numbers: dict) -> list[Table]:
    """The tables of the page and of the PDF, as text cells (one formatting for both)."""
    nan = float("nan")
    prov = numbers["provenance"]
    prov_rows = [
        ["Campaign fingerprint", prov["fingerprint"]],
        ["Release", prov["release"]],
        ["Injected into", prov.get("inject_into", "not recorded")],
        ["SExtractor", prov["sextractor"]],
        ["SWarp", prov["swarp"]],
        ["balrog_runner (catalogs)", prov["balrog_runner"]],
        ["GalSim", prov["galsim"]],
        *([f"Configuration: {k}", v] for k, v in prov["config_files"].items()),
        ["Report software", ", ".join(f"{k} {v}" for k, v in prov["versions"].items())],
        ["Report made", prov["date"]],
    ]
    band_rows = []
    for b in numbers["bands"]:
        fit = numbers["completeness"][b]["fit"]
        bright = numbers["bias_bright"].get(b, {})
        band_rows.append([b, _pm(fit["m50"], fit["m50_error"], ".3f"), _pm(fit["width"], fit["width_error"], ".2f"),
                          _pm(fit["plateau"], fit["plateau_error"], ".2f"),
                          _fmt(numbers["completeness"][b]["binned_m50"], ".2f"),
                          _pm(bright.get("median", nan), bright.get("median_error", nan), "+.3f"),
                          _pm(bright.get("scatter", nan), bright.get("scatter_error", nan), ".3f")])
    tiles = numbers["per_tile"]
    tile_rows = [[t, str(v["realizations"]), f"{v['objects_drawn']:,}", _percent(v["recovered_fraction"]),
                  *(_fmt(v["m50"].get(b, nan), ".2f") for b in numbers["bands"]), _format_seconds(v["seconds"])]
                 for t, v in tiles.items()]
    split_rows = [[what, name, f"{v['objects']:,}", _percent(v["recovered_fraction"]),
                   _pm(v["fit"]["m50"], v["fit"]["m50_error"], ".2f")]
                  for what, split in (("blend class", numbers["by_blend_class"]), ("object type", numbers["by_objtype"]))
                  for name, v in split.items()]
    src = numbers["blend_classes_from"]
    ref = numbers["reference_band"]
    bright = numbers["bright_mag"]
    tables = [
        Table("Campaign", campaign_rows(numbers)),
        Table("Provenance", prov_rows,
              note=f"One line per item for the whole campaign; 'varies' lists the distinct values. The tiles' own "
                   f"fingerprints ({prov['tile_fingerprints']:,} distinct) differ by design: each covers its "
                   "tile's positions."),
        Table("Per band", band_rows, ["band", "m50 [mag]", "width [mag]", "plateau", "binned m50",
                                      f"median Δmag (<{bright:g})", f"scatter (<{bright:g})"],
              note="m50: where the fitted completeness A / (1 + exp((m - m_c) / w)) is 50% (maximum likelihood "
                   "on the unbinned objects; errors include the realization-to-realization scatter); width: w; "
                   "plateau: A; binned m50: the 50% crossing of the binned curve, for comparison. Δmag: "
                   "MAG_AUTO - true of recovered objects not on a pre-existing detection."),
        Table("Per tile", tile_rows, ["tile", "realizations", "drawn", "recovered",
                                      *(f"m50 {b}" for b in numbers["bands"]), "time"],
              note="m50 per tile: the campaign's fitted curve (plateau and width) moved to the tile's objects. "
                   "Every tile is in per_tile.csv.", pdf_rows=PDF_TILE_ROWS),
        Table(f"By blend class and object type (band {ref})", split_rows,
              ["split", "class", "drawn", "recovered", "m50 [mag]"],
              note=f"Blend classes from {src['file']:,} match table(s), {src['recomputed']:,} recomputed from the "
                   f"tile's nosim catalog, {src['unknown']:,} unknown (no nosim catalog)."),
    ]
    if numbers.get("comparison") is not None:
        tables.append(comparison_table(numbers["comparison"]))
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
                                 "known truth type with a measured magnitude; per magnitude in the figure."))
    else:
        tables.append(Table(title, [], ["class"], note=f"Not available: {sg['reason']}."))
    for b in numbers["bands"]:
        c = numbers["completeness"][b]
        edges = numbers["magnitude_edges"]
        rows = [[f"{edges[i]:.1f}-{edges[i + 1]:.1f}", f"{c['n'][i]:,}", f"{c['k'][i]:,}", _percent(c["fraction"][i]),
                 f"{_fmt(c['lower'][i], '.3f')}-{_fmt(c['upper'][i], '.3f')}", _fmt(c["deff"][i], ".2f"),
                 "yes" if c["shown"][i] else "no"] for i in range(len(c["n"])) if c["n"][i] > 0]
        tables.append(Table(f"Completeness per bin, band {b}", rows,
                            ["true mag", "drawn", "recovered", "completeness", "68% interval", "deff", "drawn in figure"],
                            note=f"deff: design effect (between-batch variance over binomial); bins of fewer than "
                                 f"{numbers['min_count']} objects are not drawn.", folded=True,
                            pdf_rows=None if b == ref else 0))
    return tables


def comparison_table(cmp: dict) -> Table:
    """``--compare``: both campaigns' completeness fits per band and their difference."""
    a, b = cmp["label"], cmp["other_label"]
    rows = []
    for band in cmp["bands"]:
        d = cmp["per_band"][band]
        rows.append([band, _pm(d["m50"], d["m50_error"], ".3f"), _pm(d["other_m50"], d["other_m50_error"], ".3f"),
                     _pm(d["delta_m50"], d["delta_m50_error"], "+.3f"), _fmt(d["plateau"], ".2f"),
                     _fmt(d["other_plateau"], ".2f"), _fmt(d["width"], ".2f"), _fmt(d["other_width"], ".2f"),
                     _fmt(d["bright_median"], "+.3f"), _fmt(d["other_bright_median"], "+.3f")])
    sample = ("the same tiles and number of injected objects" if cmp["same_sample"] else
              f"NOT the same sample: {cmp['tiles']:,} tile(s) and {cmp['objects_injected']:,} objects here, "
              f"{cmp['other_tiles']:,} and {cmp['other_objects_injected']:,} there")
    return Table(f"Compared: {a} and {b}", rows,
                 ["band", f"m50 {a}", f"m50 {b}", "Δm50", f"plateau {a}", f"plateau {b}", f"width {a}",
                  f"width {b}", f"median Δmag {a}", f"median Δmag {b}"],
                 note=f"This campaign ({a}) against {cmp['other_campaign']} ({b}; {cmp['other_realizations']:,} "
                      f"realizations), {sample}. Recovered overall: {_percent(cmp['recovered_fraction'])} and "
                      f"{_percent(cmp['other_recovered_fraction'])}. Each fit as in the per-band table; Δm50 = "
                      f"m50 {a} - m50 {b}, errors added in quadrature (an upper bound when both ran on the same "
                      "positions and survey, whose errors are correlated). Median Δmag: MAG_AUTO - true, brighter "
                      "than the per-band table's limit.")


def per_tile_csv(numbers: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    bands = numbers["bands"]
    writer.writerow(["tile", "realizations", "objects_drawn", "objects_recovered", "recovered_fraction",
                     *(f"m50_{b}" for b in bands), "seconds"])
    for tile, v in numbers["per_tile"].items():
        writer.writerow([tile, v["realizations"], v["objects_drawn"], v["objects_recovered"],
                         f"{v['recovered_fraction']:.6g}", *(f"{v['m50'][b]:.4f}" for b in bands),
                         "" if v["seconds"] is None else f"{v['seconds']:.1f}"])
    return out.getvalue()


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("balrog_runner.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def html_page(numbers: dict, tables: list[Table], figures: list[tuple[plots.FigureSpec, str]]) -> str:
    """The page, from ``templates/report.html.j2``."""
    template = _environment().get_template("report.html.j2")
    return template.render(title=title_of(numbers), numbers=numbers, tables=tables,
                           missing=_missing_text(numbers["missing"]) if numbers["partial"] else "",
                           figures=[{"name": spec.name, "caption": caption,
                                     "width": round(plots.WIDTH * 96), "height": round(spec.height * 96)}
                                    for spec, caption in figures])


def count(campaign: str | Path | None, source: str = "files", *, db_url: str | None = None,
          dbname: str | None = None, prefix: str | None = None, nside: int = DEFAULT_NSIDE):
    """The campaign counted from ``source``: ``files`` (its directory) or ``db`` (its database)."""
    if source not in SOURCES:
        raise InputFileError(f"report source {source!r} is not one of {', '.join(SOURCES)}")
    if source == "files":
        if campaign is None:
            raise InputFileError("a campaign directory is needed to report from files")
        from .from_files import count_files

        return count_files(campaign, nside=nside)
    from ..campaign.record import read_record
    from ..db import make_engine, resolve_url

    outdir = Path(campaign) if campaign is not None else None
    record = read_record(outdir) if outdir is not None and outdir.is_dir() else None
    db = dict((record or {}).get("db") or {})
    if db_url:
        db = {"url": db_url}
    name = dbname or (record or {}).get("dbname")
    if not name:
        raise InputFileError("the database report needs --dbname (or a campaign directory whose campaign.json "
                             "names it)")
    table_prefix = prefix if prefix is not None else db.get("table-prefix") or ""
    if not db and outdir is None:
        raise InputFileError("the database report needs --db (or a campaign directory whose campaign.json "
                             "says where)")
    url = resolve_url(db, outdir or Path("."), name)
    engine = make_engine(url)
    from .from_db import count_db

    try:
        return count_db(engine, name, table_prefix, nside=nside, outdir=outdir)
    finally:
        engine.dispose()


def write_report(campaign: str | Path | None, report_dir: str | Path | None = None, *, source: str = "files",
                 db_url: str | None = None, dbname: str | None = None, prefix: str | None = None,
                 nside: int = DEFAULT_NSIDE, options: report_numbers.Options | None = None,
                 compare: str | Path | None = None) -> Path:
    """Count the campaign, compute its numbers, write every figure and file; returns the page.

    ``compare``: another campaign directory (read from its files), reported beside this one
    (:mod:`.compare`: e.g. the same survey and positions in the other injection mode).
    """
    other = None
    if compare is not None:  # checked first: a bad --compare fails before any work
        if not Path(compare).is_dir():
            raise InputFileError(f"--compare {compare}: not a campaign directory (run['outdir'] of another "
                                 "campaign, holding <TILE>/catalogs/)")
        other_counts, other_info = count(compare, "files", nside=nside)
        other = _numbers(other_counts, other_info, options)
    counts, info = count(campaign, source, db_url=db_url, dbname=dbname, prefix=prefix, nside=nside)
    numbers = _numbers(counts, info, options)
    if other is not None:
        from .compare import comparison

        numbers["comparison"] = comparison(numbers, other, compare)
    if report_dir is None:
        if info.outdir is None:
            raise InputFileError("give --report-dir: the campaign directory is not known")
        report_dir = info.outdir / "report"
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    figures = []
    for spec in plots.FIGURES:
        png = report_dir / spec.name
        if not spec.available(numbers):
            png.unlink(missing_ok=True)  # a figure from an earlier report of other catalogs is not this one's
            continue
        plots.render_png(spec, numbers, png)
        figures.append((spec, spec.caption(numbers)))
    summary = _json_ready(numbers)
    atomic_write_text(report_dir / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    atomic_write_text(report_dir / "per_tile.csv", per_tile_csv(numbers))
    tables = report_tables(numbers)
    from . import pdf as report_pdf

    report_pdf.write_pdf(report_dir / "report.pdf", title_of(numbers), _subtitle(numbers), tables, figures, numbers)
    page = report_dir / "index.html"
    atomic_write_text(page, html_page(numbers, tables, figures))
    log.info("report written to %s (and report.pdf)", page)
    return page


def _numbers(counts, info, options: report_numbers.Options | None) -> dict:
    totals = report_numbers.totals(counts)
    if totals["objects_drawn"] == 0:
        raise InputFileError(f"the {len(info.realizations)} realization(s) in {info.where} hold no drawn objects "
                             "(truth catalogs empty or every object off the image): nothing to report")
    return report_numbers.compute(counts, info, options or report_numbers.Options())


def _subtitle(numbers: dict) -> str:
    src = numbers["source"]
    partial = (f"PARTIAL: {numbers['realizations']:,} of {numbers['realizations_expected']:,} realizations; "
               if numbers["partial"] else "")
    return f"{partial}{numbers['tiles']:,} tile(s), {numbers['realizations']:,} realizations, from {src['kind']} {src['where']}"


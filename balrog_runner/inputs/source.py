"""Where a release's files live and how to log in: URL layouts, run tables, netrc.

An :class:`ArchiveSource` turns ``(tile, band)`` into the image and PSFEx URLs of a
release, over an ``http(s)://`` or ``file://`` root (or a directory: site mirrors such as
NERSC's copy of DESDM keep the same relative paths):

* a manifest written by ``balrog-inputs`` (:mod:`balrog_runner.inputs.manifest`): each file's path
  relative to the root, looked up in DESDM's database once on a login node;
* a named layout: ``desdm``/``y1`` (Y1 era: ``<root>/OPS/coadd/<run>/coadd/<TILE>_<band>.fits.fz``),
  ``y3`` (Y3 era and later: ``<root>/OPS/multiepoch/<campaign>/r<reqnum>/<TILE>/p<attnum>/coadd/
  <TILE>_r<reqnum>p<attnum>_<band>.fits.fz``, PSF under ``.../p<attnum>/psf/``), ``plain``
  (``<root>/<TILE>/<TILE>_<band>.fits.fz``);
* or user templates over ``{root} {tile} {band} {run} {reqnum} {attnum} {campaign}``.

A single-epoch source (``se_manifest=``, :mod:`balrog_runner.inputs.se_manifest`) has only
the root and the manifest: every CCD image's and PSF model's URL is the root + its path.

Without a manifest the per-tile values come from the user: one ``run`` or a run table
(``TILENAME RUN``), a ``campaign`` and an attempt table (``TILENAME REQNUM ATTNUM``).

Credentials come from a netrc file. ``requests`` reads ``~/.netrc`` by itself but ignores
any other path, so we read the file with the stdlib :mod:`netrc` parser and pass the pair
explicitly. Gotchas handled here:

* :class:`netrc.NetrcParseError` messages can quote the offending token, which may be a
  password in a malformed file; our errors name only the file and the line.
* the stdlib refuses a group/world-readable ``~/.netrc`` only when it opens the default
  file itself; we pass a path, so we warn about loose permissions instead (curl and wget
  accept such files too; refusing them would break working setups).
* a root like ``https://user:pw@host`` is refused: URLs end up in messages and logs.
"""

from __future__ import annotations

import logging
import netrc
import os
import re
import stat
import string
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import fitsio

from ..errors import ConfigError, InputFileError
from ..sky.geometry import is_des_tilename
from . import se_manifest as se_manifest_file
from .manifest import FileEntry, Manifest
from .manifest import read as read_manifest
from .se_manifest import SEManifest

log = logging.getLogger(__name__)

PLACEHOLDERS: frozenset[str] = frozenset({"root", "tile", "band", "run", "reqnum", "attnum", "campaign"})

# DESDM's two archive layouts, relative to the archive root (DESIGN.md §10). The Y3+ PSF
# folder and name follow DES's own paths, e.g. mepipelineappintg's pizza-cutter inputs:
# OPS/multiepoch/Y3A1/r2597/DES2029-5457/p01/psf/DES2029-5457_r2597p01_r_psfcat.psf.
Y1_IMAGE_RELPATH = "OPS/coadd/{run}/coadd/{tile}_{band}.fits.fz"
Y1_PSF_RELPATH = "OPS/coadd/{run}/coadd/{tile}_{band}_psfcat.psf"
Y3_IMAGE_RELPATH = "OPS/multiepoch/{campaign}/r{reqnum}/{tile}/p{attnum}/coadd/{tile}_r{reqnum}p{attnum}_{band}.fits.fz"
Y3_PSF_RELPATH = "OPS/multiepoch/{campaign}/r{reqnum}/{tile}/p{attnum}/psf/{tile}_r{reqnum}p{attnum}_{band}_psfcat.psf"


@dataclass(frozen=True)
class Credentials:
    """A login for one archive host; ``repr`` and ``str`` never show the password.

    ``origin`` says where it came from (e.g. ``/home/me/.netrc``) so errors can point the
    user at the right file without revealing what is in it.
    """

    login: str
    password: str = field(repr=False)
    origin: str = ""

    def __str__(self) -> str:
        return f"<credentials for {self.login!r} from {self.origin or 'netrc'}>"

    def as_auth(self) -> tuple[str, str]:
        """The ``(login, password)`` pair ``requests`` takes as basic auth."""
        return (self.login, self.password)


def default_netrc_path() -> Path:
    """``$NETRC`` if set (as curl and requests honour it), else ``~/.netrc``."""
    return Path(os.environ.get("NETRC") or "~/.netrc").expanduser()


def netrc_credentials(host: str, path: str | os.PathLike | None = None) -> Credentials | None:
    """Return the login for ``host`` from a netrc file, or ``None`` if there is none.

    ``path`` None means the default file; a missing default file is not an error (the
    archive may be public), a missing explicit ``path`` is. The netrc ``default`` entry
    applies when no ``machine`` entry matches ``host``.
    """
    explicit = path is not None
    netrc_path = Path(path).expanduser() if explicit else default_netrc_path()
    if not netrc_path.is_file():
        if explicit:
            raise InputFileError(f"netrc file {netrc_path} does not exist or is not a file")
        log.debug("no netrc file at %s; downloading without credentials", netrc_path)
        return None
    _warn_if_readable_by_others(netrc_path)
    try:
        parsed = netrc.netrc(str(netrc_path))
    except netrc.NetrcParseError as exc:
        where = f" line {exc.lineno}" if exc.lineno else ""
        raise InputFileError(
            f"cannot parse netrc file {netrc_path} at{where or ' an unknown line'}: expected "
            "'machine <host> login <user> password <password>' entries"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise InputFileError(f"cannot read netrc file {netrc_path}: {reason}") from None
    entry = parsed.authenticators(host)
    if entry is None:
        log.debug("netrc file %s has no entry for host %s", netrc_path, host)
        return None
    login, _account, password = entry
    if not login:
        log.warning("netrc file %s: entry for host %s has no login; ignoring it", netrc_path, host)
        return None
    return Credentials(login=login, password=password or "", origin=str(netrc_path))


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("netrc file %s is readable by other users; consider 'chmod 600 %s'", path, path)


@dataclass(frozen=True)
class Layout:
    """A named pair of URL templates (image and PSF) over the placeholders in PLACEHOLDERS."""

    name: str
    image: str
    psf: str
    description: str = ""


LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add (or replace) a named layout after validating both templates."""
    validate_template(layout.image, f"layout {layout.name!r} image template")
    validate_template(layout.psf, f"layout {layout.name!r} PSF template")
    LAYOUTS[layout.name] = layout
    return layout


def validate_template(template: str, what: str = "URL template") -> frozenset[str]:
    """Return the placeholders of ``template``; unknown or malformed ones are a ConfigError.

    ``{band}`` is required: without it every band would map to the same file.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{what} {template!r} is malformed: {exc}") from None
    names: set[str] = set()
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name in PLACEHOLDERS and (spec or conversion):
            raise ConfigError(f"{what} {template!r}: placeholder {{{name}}} must be plain (no ':' or '!')")
        if name not in PLACEHOLDERS:
            raise ConfigError(
                f"{what} {template!r} has placeholder {{{name}}}; allowed: "
                + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
            )
        names.add(name)
    if "band" not in names:
        raise ConfigError(f"{what} {template!r} has no {{band}} placeholder")
    return frozenset(names)


register_layout(Layout(
    "desdm",
    "{root}/" + Y1_IMAGE_RELPATH,
    "{root}/" + Y1_PSF_RELPATH,
    "DESDM archive, Y1 era; {run} is the coadd processing run of the tile (--run or --run-table)",
))
register_layout(Layout(
    "y1",
    "{root}/" + Y1_IMAGE_RELPATH,
    "{root}/" + Y1_PSF_RELPATH,
    "DESDM archive, Y1 era (same as desdm)",
))
register_layout(Layout(
    "y3",
    "{root}/" + Y3_IMAGE_RELPATH,
    "{root}/" + Y3_PSF_RELPATH,
    "DESDM archive, Y3 era and later (multiepoch); {campaign} e.g. Y3A1, {reqnum}/{attnum} per tile "
    "from an attempt table",
))
register_layout(Layout(
    "plain",
    "{root}/{tile}/{tile}_{band}.fits.fz",
    "{root}/{tile}/{tile}_{band}_psfcat.psf",
    "one directory per tile (what balrog-make-tile and the demo archive write)",
))


def read_run_table(path: str | os.PathLike) -> dict[str, str]:
    """Read ``TILENAME RUN`` pairs (whitespace or comma separated, ``#`` comments).

    DESDM finds a tile's coadd run with a database query we cannot make from a compute
    node; users export the pairs once (or write them by hand) and pass the file. A first
    line ``tilename run`` is taken as a header.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read run table {path}: {getattr(exc, 'strerror', None) or exc}") from None
    runs: dict[str, str] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").split()
        if len(fields) != 2:
            raise InputFileError(f"run table {path} line {lineno}: expected 'TILENAME RUN', got {raw.strip()!r}")
        tile, run = fields
        if not runs and tile.lower() == "tilename":
            continue
        if not is_des_tilename(tile):
            raise InputFileError(f"run table {path} line {lineno}: {tile!r} is not a DES tile name")
        runs[tile] = run
    if not runs:
        raise InputFileError(f"run table {path} has no 'TILENAME RUN' lines")
    return runs


def read_attempt_table(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """Read ``TILENAME REQNUM ATTNUM`` lines (Y3+ layouts without a manifest).

    ``REQNUM`` may be written ``2590`` or ``r2590``, ``ATTNUM`` ``1``, ``01`` or ``p01``;
    attempts are zero-padded to two digits as DESDM names them (``p01``). A first line
    ``tilename reqnum attnum`` is a header; ``#`` starts a comment.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read attempt table {path}: {getattr(exc, 'strerror', None) or exc}") from None
    attempts: dict[str, tuple[str, str]] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").split()
        if not attempts and fields[0].lower() == "tilename":
            continue
        if len(fields) != 3:
            raise InputFileError(f"attempt table {path} line {lineno}: expected 'TILENAME REQNUM ATTNUM', got {raw.strip()!r}")
        tile, req, att = fields
        if not is_des_tilename(tile):
            raise InputFileError(f"attempt table {path} line {lineno}: {tile!r} is not a DES tile name")
        req, att = req.lower().removeprefix("r"), att.lower().removeprefix("p")
        if not (req.isdigit() and att.isdigit()):
            raise InputFileError(
                f"attempt table {path} line {lineno}: request {fields[1]!r} and attempt {fields[2]!r} "
                "must be numbers (e.g. 2590 01)"
            )
        attempts[tile] = (str(int(req)), f"{int(att):02d}")
    if not attempts:
        raise InputFileError(f"attempt table {path} has no 'TILENAME REQNUM ATTNUM' lines")
    return attempts


def read_tile_names(path: str | os.PathLike) -> list[str]:
    """Tile names from a text list (first column) or a FITS table (``tilename`` column)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"tile list {path} does not exist")
    if path.suffix.lower() in {".fits", ".fit", ".fz"}:
        try:
            with fitsio.FITS(str(path)) as fits:
                for hdu in fits:
                    if hdu.get_exttype() == "BINARY_TBL":
                        cols = {c.lower(): c for c in hdu.get_colnames()}
                        if "tilename" in cols:
                            names = [str(n).strip() for n in hdu.read_column(cols["tilename"])]
                            break
                else:
                    raise InputFileError(f"tile list {path} has no table with a tilename column")
        except OSError:
            raise InputFileError(f"tile list {path} is not a readable FITS file") from None
    else:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"cannot read tile list {path}: {exc}") from None
        names = [ln.split("#", 1)[0].replace(",", " ").split()[0]
                 for ln in text.splitlines() if ln.split("#", 1)[0].strip()]
        names = [n for n in names if n.lower() != "tilename"]
    if not names:
        raise InputFileError(f"tile list {path} holds no tile names")
    return names


def _normalise_root(root: str) -> str:
    """Return ``root`` as an http(s) or file URL without a trailing slash."""
    if not root:
        raise ConfigError("archive root is empty; give an http(s):// URL, a file:// URL or a directory")
    try:
        parts = urllib.parse.urlsplit(root)
        if parts.scheme in ("http", "https"):
            parts.port  # noqa: B018 - a port that is not a number raises here, not in the first download
    except ValueError as exc:  # an unclosed IPv6 bracket (http://[::1), a port that is not a number
        raise ConfigError(f"archive root {root!r} is not a valid URL ({exc}); give an http(s):// URL, "
                          "a file:// URL or a directory") from None
    if parts.scheme in ("http", "https"):
        if "@" in parts.netloc:
            raise ConfigError(
                "archive root must not contain credentials (user:password@host); put them in a netrc file"
            )
        if not parts.hostname:
            raise ConfigError(f"archive root {root!r} has no host name")
        return root.rstrip("/")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"archive root {root!r}: file:// URLs must be local (file:///path)")
        return root.rstrip("/")
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return Path(root).expanduser().resolve().as_uri()
    raise ConfigError(f"archive root {root!r} has scheme {parts.scheme!r}; allowed: http, https, file")


@dataclass(frozen=True)
class ArchiveSource:
    """Where a release's files live: root, image and PSF URL templates, runs, credentials.

    Build it with :meth:`create` (which validates everything and reads the netrc file);
    the credentials are excluded from ``repr`` so a logged source is safe.
    """

    root: str
    image_template: str
    psf_template: str
    run: str | None = None
    runs: dict[str, str] = field(default_factory=dict)
    credentials: Credentials | None = field(default=None, repr=False)
    netrc_origin: str = ""
    timeout: float = 60.0
    campaign: str | None = None
    attempts: dict[str, tuple[str, str]] = field(default_factory=dict)
    manifest: Manifest | None = field(default=None, repr=False)
    se_manifest: SEManifest | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        root: str,
        layout: str = "plain",
        url_template: str | None = None,
        psf_template: str | None = None,
        run: str | None = None,
        run_table: str | os.PathLike | None = None,
        netrc_path: str | os.PathLike | None = None,
        timeout: float = 60.0,
        campaign: str | None = None,
        attempt_table: str | os.PathLike | None = None,
        manifest: Manifest | str | os.PathLike | None = None,
        se_manifest: SEManifest | str | os.PathLike | None = None,
        tiles: Iterable[str] | None = None,
    ) -> ArchiveSource:
        """Validate the pieces and build a source.

        With ``manifest`` (a :class:`~balrog_runner.inputs.manifest.Manifest` or its path) every URL
        is ``root`` + the manifest's relative path and the layout/template/run options must
        be left out. ``campaign`` is the ``{campaign}`` of Y3+ layouts (e.g. ``Y3A1``);
        ``attempt_table`` a file of per-tile ``{reqnum}``/``{attnum}`` (see
        :func:`read_attempt_table`).

        ``layout`` names an entry of LAYOUTS; ``url_template`` (image) overrides it, with
        ``psf_template`` or, if that is omitted, the image template with its final
        ``{tile}_{band}.fits.fz`` replaced by ``{tile}_{band}_psfcat.psf``. ``run`` is the
        ``{run}`` value for every tile and may itself contain ``{tile}``; ``run_table`` a
        file of per-tile runs (see :func:`read_run_table`). ``timeout`` is in seconds
        (connect, and each read of the socket).

        ``se_manifest`` (an :class:`~balrog_runner.inputs.se_manifest.SEManifest` or its path,
        of which only ``tiles`` are read, None: all) makes a single-epoch source: the URLs are
        ``root`` + its paths (:meth:`url_for`), and no other way of finding files may be given.
        """
        root_url = _normalise_root(root)
        if not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if se_manifest is not None:
            given = [name for name, value in (("manifest", manifest), ("url_template", url_template),
                                              ("psf_template", psf_template), ("run", run),
                                              ("run_table", run_table), ("campaign", campaign),
                                              ("attempt_table", attempt_table)) if value is not None]
            if given:
                raise ConfigError(f"a single-epoch manifest gives every file's path; do not also give {', '.join(given)}")
            if not isinstance(se_manifest, SEManifest):
                se_manifest = se_manifest_file.read(se_manifest, tiles=tiles)
            credentials, origin = _credentials_for(root_url, netrc_path)
            return cls(root_url, "", "", None, {}, credentials, origin, float(timeout), se_manifest=se_manifest)
        if manifest is not None:
            given = [name for name, value in (("url_template", url_template), ("psf_template", psf_template),
                                              ("run", run), ("run_table", run_table), ("campaign", campaign),
                                              ("attempt_table", attempt_table)) if value is not None]
            if given:
                raise ConfigError(f"a manifest gives every file's path; do not also give {', '.join(given)}")
            if not isinstance(manifest, Manifest):
                manifest = read_manifest(manifest)
            credentials, origin = _credentials_for(root_url, netrc_path)
            return cls(root_url, "", "", None, {}, credentials, origin, float(timeout), manifest=manifest)
        if url_template is None:
            if layout not in LAYOUTS:
                raise ConfigError(f"unknown archive layout {layout!r}; allowed: {', '.join(sorted(LAYOUTS))}")
            image_t, psf_t = LAYOUTS[layout].image, LAYOUTS[layout].psf
            if psf_template is not None:
                psf_t = psf_template
        else:
            image_t = url_template
            validate_template(image_t, "image URL template")
            psf_t = psf_template if psf_template is not None else _derive_psf_template(url_template)
        names = validate_template(image_t, "image URL template") | validate_template(psf_t, "PSF URL template")
        if run is not None and run_table is not None:
            raise ConfigError("give either a run (--run) or a run table (--run-table), not both")
        runs = read_run_table(run_table) if run_table is not None else {}
        if run is not None:
            _check_run_value(run)
        if "run" in names and run is None and not runs:
            raise ConfigError(
                f"URL template {image_t!r} needs a {{run}} for each tile: give --run or --run-table"
            )
        if "run" not in names and (run is not None or runs):
            log.warning("a run was given but the URL templates have no {run}; it is ignored")
        if campaign is not None and not _CAMPAIGN_RE.fullmatch(campaign):
            raise ConfigError(f"campaign {campaign!r} is not a DESDM campaign name (letters, digits, '_', e.g. Y3A1)")
        if "campaign" in names and campaign is None:
            raise ConfigError(f"URL template {image_t!r} needs {{campaign}} (e.g. Y3A1): give a campaign")
        attempts = read_attempt_table(attempt_table) if attempt_table is not None else {}
        if names & {"reqnum", "attnum"} and not attempts:
            raise ConfigError(
                f"URL template {image_t!r} needs each tile's {{reqnum}} and {{attnum}}: give an attempt "
                "table ('TILENAME REQNUM ATTNUM' lines) or a manifest from balrog-inputs"
            )
        credentials, origin = _credentials_for(root_url, netrc_path)
        return cls(root_url, image_t, psf_t, run, runs, credentials, origin, float(timeout),
                   campaign=campaign, attempts=attempts)

    @property
    def is_local(self) -> bool:
        """True for a ``file://`` archive (copies; no retries: corruption there is permanent)."""
        return self.root.startswith("file:")

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.root).hostname or ""

    def run_for(self, tile: str) -> str:
        """The ``{run}`` value of ``tile``; a ConfigError if the run table lacks it."""
        if tile in self.runs:
            return self.runs[tile]
        if self.run is not None:
            return self.run.replace("{tile}", tile)
        if not self.runs:
            return ""
        raise ConfigError(f"tile {tile} is not in the run table; add a 'TILENAME RUN' line for it")

    def entry(self, tile: str, band: str) -> FileEntry | None:
        """The manifest entry (paths, sizes in bytes, MD5) of ``tile``/``band``; None without a manifest."""
        return self.manifest.entry(tile, band) if self.manifest is not None else None

    def urls(self, tile: str, band: str) -> tuple[str, str]:
        """The image and PSF URLs of ``tile`` in ``band`` (never with credentials)."""
        if self.se_manifest is not None:
            raise ConfigError(f"the archive source of tile {tile} is a single-epoch manifest: it lists CCD images, "
                              "not coadds")
        if self.manifest is not None:
            entry = self.manifest.entry(tile, band)
            return self._join(entry.image), self._join(entry.psf)
        values = {"root": self.root, "tile": tile, "band": band}
        templates = self.image_template + self.psf_template
        if "{run}" in templates:
            values["run"] = self.run_for(tile)
        if "{campaign}" in templates:
            values["campaign"] = self.campaign or ""
        if "{reqnum}" in templates or "{attnum}" in templates:
            if tile not in self.attempts:
                raise ConfigError(f"tile {tile} is not in the attempt table; add a 'TILENAME REQNUM ATTNUM' line for it")
            values["reqnum"], values["attnum"] = self.attempts[tile]
        return self.image_template.format(**values), self.psf_template.format(**values)

    def _join(self, relpath: str) -> str:
        # '+' in tile names stays literal (as in the templates); anything odd is escaped
        return f"{self.root}/{urllib.parse.quote(relpath.lstrip('/'), safe='/+')}"

    def url_for(self, relpath: str) -> str:
        """The URL of a file at ``relpath`` under the root (a manifest's path; never with credentials)."""
        return self._join(relpath)


_CAMPAIGN_RE = re.compile(r"^[A-Za-z0-9_]+$")


def _credentials_for(root_url: str, netrc_path: str | os.PathLike | None) -> tuple[Credentials | None, str]:
    """The netrc login for an http(s) root and the netrc file's name (for error messages)."""
    parts = urllib.parse.urlsplit(root_url)
    if parts.scheme not in ("http", "https"):
        return None, ""
    credentials = netrc_credentials(parts.hostname or "", netrc_path)
    origin = str(Path(netrc_path).expanduser() if netrc_path is not None else default_netrc_path())
    return credentials, origin


def _derive_psf_template(image_template: str) -> str:
    suffix = "{tile}_{band}.fits.fz"
    if image_template.endswith(suffix):
        return image_template[: -len(suffix)] + "{tile}_{band}_psfcat.psf"
    raise ConfigError(
        f"cannot derive the PSF URL from image template {image_template!r} (it does not end in "
        f"{suffix!r}); give a PSF template too"
    )


def _check_run_value(run: str) -> None:
    if not run.strip():
        raise ConfigError("run is empty")
    stripped = run.replace("{tile}", "")
    if "{" in stripped or "}" in stripped:
        raise ConfigError(f"run {run!r} may contain only the placeholder {{tile}}")

"""Writing and reading merged files: FITS (fitsio), HDF5 (h5py) and Parquet (pyarrow).

One writer interface for the three, append-only so a merge streams: each table is declared
with its dtype, rows are appended a realization (or a chunk) at a time, and
:meth:`Writer.finish` adds the small tables and the provenance when everything is known.
:func:`open_writer` writes to a temporary beside the destination and renames it into place
on success only (:mod:`..atomic`), so a killed merge leaves the old file or none, and
temporaries that the runner's leftovers clean-up recognises.

Layouts (the tables of :mod:`.join` plus ``REALIZATIONS`` and ``COLUMNS``):

* FITS: binary-table HDUs in table order after an empty primary (HDU 1 is ``OBJECTS``). A
  FITS table holds at most 999 columns, so a wider table (a DETECTIONS row with more sim
  columns than DESDM's) is stored as row-aligned HDUs cut at its column groups
  (``DETECTIONS``, ``DETECTIONS_SIM`` ...); every HDU's ``MRGTABLE`` card names its table.
  Provenance cards in every table header; ``DATASHA`` (sha256 of the whole table,
  :class:`.join.TableDigest`) and FITS ``CHECKSUM``/``DATASUM`` per HDU. A table HDU cannot
  grow while another follows it, so each piece is first appended to a raw temporary and the
  final file is assembled from them (:class:`FitsWriter`).
* HDF5: a group per table, one 1-d dataset per column (chunked, resizable, gzip + shuffle,
  Fletcher-32 checksummed; the DES way of storing catalogs in HDF5: columns are read alone),
  strings as fixed-length ASCII; provenance as attributes of the root and of each group;
  the group's ``columns`` attribute gives the column order, ``dtype`` the original types.
* Parquet: a directory ``<name>.parquet/`` with one file per table (``OBJECTS.parquet``
  ...; a Parquet file holds one table), page checksums on; provenance, digest and the
  original numpy types in each file's key-value metadata (``balrog.*``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_directory, atomic_path, disk_error
from ..errors import ConfigError, InputFileError, OutputError
from .join import TableDigest, _canonical_dtype, canonical, chunk_rows

FORMATS = ("fits", "hdf5", "parquet")
SUFFIXES = {"fits": ".fits", "hdf5": ".h5", "parquet": ".parquet"}
_BY_SUFFIX = {".fits": "fits", ".fit": "fits", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
              ".parquet": "parquet", ".pq": "parquet"}
#: FITS header cards that describe the table itself, not what made it: never copied as provenance.
STRUCTURAL = ("XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS", "EXTNAME", "EXTVER", "CHECKSUM",
              "DATASUM", "COMMENT", "HISTORY", "SIMPLE", "EXTEND", "DATASHA", "MRGTABLE", "")
_STRUCTURAL_PREFIXES = ("NAXIS", "TTYPE", "TFORM", "TDIM", "TUNIT", "TNULL", "TSCAL", "TZERO", "TDISP", "TCOMM")


def format_for(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format named by ``fmt``, else by the file name's suffix; a clear error otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise ConfigError(f"cannot tell the format of {path} from its suffix: use .fits, .h5/.hdf5 or .parquet, "
                          "or --format")
    return _BY_SUFFIX[suffix]


def require_library(fmt: str) -> None:
    """HDF5 needs h5py (a dependency), Parquet pyarrow (the ``parquet`` extra): say what to install."""
    module, install = {"hdf5": ("h5py", "pip install h5py"),
                       "parquet": ("pyarrow", "pip install 'balrog_runner[parquet]'")}.get(fmt, (None, None))
    if module is None:
        return
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(f"{fmt} files need {module}, which is not installed: {install}") from None


def provenance_cards(header: Mapping[str, Any]) -> dict[str, Any]:
    """The cards of a catalog header that say what made it (structural ones dropped)."""
    out = {}
    for key, value in header.items():
        key = str(key).upper()
        if key in STRUCTURAL or key.startswith(_STRUCTURAL_PREFIXES):
            continue
        out[key] = value.strip() if isinstance(value, str) else value
    return out


def _native(rows: np.ndarray, strings_as_bytes: bool = False) -> np.ndarray:
    """``rows`` with native byte order (h5py and pyarrow want it); U strings to ASCII bytes on request."""
    fields = []
    for name in rows.dtype.names:
        base, shape = rows.dtype[name].base, rows.dtype[name].shape
        if base.kind == "U" and strings_as_bytes:
            base = np.dtype(f"S{max(1, base.itemsize // 4)}")
        elif base.kind in "iufc" and base.itemsize > 1:
            base = base.newbyteorder("=")
        fields.append((name, base, shape) if shape else (name, base))
    dt = np.dtype(fields)
    if dt == rows.dtype:
        return rows
    out = np.empty(len(rows), dtype=dt)
    for name in dt.names:
        col = rows[name]
        out[name] = np.char.encode(col, "ascii") if col.dtype.kind == "U" and dt[name].base.kind == "S" else col
    return out


def fits_rec_dtype(hdu) -> np.dtype:
    """A FITS table HDU's row dtype as ``hdu.read()`` returns rows: strings as ``U`` (fitsio's
    ``get_rec_dtype`` says ``S``), so an empty catalog has the columns of a full one."""
    dt = hdu.get_rec_dtype()[0]
    return np.dtype([(n, f"U{dt[n].base.itemsize}", dt[n].shape) if dt[n].base.kind == "S" else
                     (n, dt[n].base, dt[n].shape) for n in dt.names])


def _descr_json(dtype: np.dtype) -> str:
    return json.dumps([[n, dtype[n].base.str, list(dtype[n].shape)] for n in dtype.names])


def _dtype_from_json(text: str) -> np.dtype:
    return np.dtype([(n, b, tuple(s)) if s else (n, b) for n, b, s in json.loads(text)])


# ============================================================================ writers


class Writer:
    """Append rows to declared tables, then :meth:`finish`; subclasses know the format."""

    def __init__(self, path: Path, tables: Mapping[str, np.dtype]):
        #: Where rows go: a temporary beside the destination (:func:`open_writer`).
        self.path = path
        self.dtypes = dict(tables)
        self.digests = {t: TableDigest(dt) for t, dt in self.dtypes.items()}
        self.finished = False

    def append(self, table: str, rows: np.ndarray) -> None:
        if rows.dtype.names != self.dtypes[table].names:
            raise InputFileError(f"rows for {table} have other columns than it was declared with")
        if len(rows):
            self.digests[table].update(rows)
            self._append(table, rows)

    def finish(self, header: Mapping[str, Any], small: Mapping[str, np.ndarray]) -> None:
        """Write the small tables (in full) and the provenance ``header``; the file is then complete."""
        self._finish(dict(header), dict(small))
        self.finished = True

    def table_meta(self, table: str) -> dict[str, Any]:
        return {"rows": self.digests[table].rows, "sha256": self.digests[table].hexdigest()}

    # subclass hooks
    def _append(self, table: str, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self, header: dict[str, Any], small: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Release what a failed merge holds (the temporary itself is removed by :func:`open_writer`)."""


def _write_cards(hdu, header: Mapping[str, Any]) -> None:
    for key, value in header.items():
        hdu.write_key(key, value)


#: Most columns a FITS binary table may have (TFIELDS).
FITS_MAX_COLUMNS = 999


def fits_pieces(table: str, dtype: np.dtype, groups: list[tuple[str, list[str]]] | None = None
                ) -> list[tuple[str, list[str]]]:
    """``(extname, columns)`` of the HDUs that store ``table``: consecutive groups packed into <= 999 columns."""
    groups = groups or [("", list(dtype.names))]
    packed: list[tuple[str, list[str]]] = []
    for label, names in groups:
        names = list(names)
        if packed and len(packed[-1][1]) + len(names) <= FITS_MAX_COLUMNS:
            packed[-1][1].extend(names)
            continue
        while names:
            packed.append((label, names[:FITS_MAX_COLUMNS]))
            names = names[FITS_MAX_COLUMNS:]
    out: list[tuple[str, list[str]]] = []
    seen: dict[str, int] = {}
    for k, (label, names) in enumerate(packed):
        seen[label] = seen.get(label, 0) + 1
        if k == 0:
            name = table
        elif label:
            name = f"{table}_{label}" if seen[label] == 1 else f"{table}_{label}_{seen[label]}"
        else:
            name = f"{table}_{seen[label]}"
        out.append((name, names))
    return out


def _subset(rows: np.ndarray, names: list[str]) -> np.ndarray:
    from numpy.lib import recfunctions

    return recfunctions.repack_fields(rows[names]) if list(names) != list(rows.dtype.names) else rows


class FitsWriter(Writer):
    """Pieces appended as packed big-endian rows to raw files, made into FITS tables at the end.

    fitsio re-reads a table's column descriptions after every write (0.1-0.3 s for 800
    columns), so rows are not appended per realization: each piece's rows go to a raw file
    (:func:`.join.canonical`: the bytes a FITS binary table stores), and :meth:`_finish`
    writes each piece as its own one-table FITS file in 32 MiB chunks, then concatenates
    their table HDUs after the first file's primary HDU — a FITS file is its HDUs one after
    the other, each header and data padded to 2880 bytes, so the bytes (and each HDU's
    CHECKSUM) stay valid.
    """

    def __init__(self, path: Path, tables: Mapping[str, np.dtype],
                 groups: Mapping[str, list[tuple[str, list[str]]]] | None = None, final: Path | None = None):
        super().__init__(path, tables)
        self.pieces = {t: fits_pieces(t, dt, (groups or {}).get(t)) for t, dt in self.dtypes.items()}
        # named after the destination, as every atomic temporary is: a killed merge's is found by that name
        self._parts_dir = Path(tempfile.mkdtemp(prefix=f".{(final or path).name}.tmp-", dir=path.parent))
        self._raw: dict[str, Any] = {}

    def _append(self, table: str, rows: np.ndarray) -> None:
        packed = canonical(rows)
        for extname, names in self.pieces[table]:
            raw = self._raw.get(extname)
            if raw is None:
                raw = self._raw[extname] = open(self._parts_dir / f"{extname}.raw", "wb")  # noqa: SIM115
            raw.write(_subset(packed, names).tobytes())

    def _piece_file(self, extname: str, dtype: np.dtype, cards: Mapping[str, Any],
                    rows: np.ndarray | None = None) -> Path:
        import fitsio

        path = self._parts_dir / f"{extname}.fits"
        raw = self._parts_dir / f"{extname}.raw"
        with fitsio.FITS(str(path), "rw", clobber=True) as f:
            f.create_table_hdu(dtype=dtype, extname=extname)
            hdu = f[-1]
            _write_cards(hdu, cards)  # before the rows: fitsio re-reads the columns once, at the append
            if rows is not None:
                if len(rows):
                    hdu.append(rows)
            elif raw.exists() and raw.stat().st_size:
                data = np.memmap(raw, dtype=dtype, mode="r")  # file pages, chunks of 256 MiB at a time
                step = chunk_rows(dtype, 256 << 20)
                for start in range(0, len(data), step):
                    hdu.append(data[start:start + step])
                del data
            hdu.write_checksum()
        raw.unlink(missing_ok=True)
        return path

    def _finish(self, header: dict[str, Any], small: dict[str, np.ndarray]) -> None:
        """Each piece made a FITS table and appended to the file, then deleted: the disk holds the
        not-yet-converted raw pieces, one piece and the file, about the file's size once more."""
        for raw in self._raw.values():
            raw.close()
        with open(self.path, "wb") as out:
            first = True
            for table, dtype in self.dtypes.items():
                packed = _canonical_dtype(dtype)
                cards = {**header, "MRGTABLE": table, "DATASHA": self.table_meta(table)["sha256"]}
                for extname, names in self.pieces[table]:
                    piece = self._piece_file(extname, _subset(np.zeros(0, dtype=packed), names).dtype, cards)
                    _append_hdus(piece, out, with_primary=first)
                    first = False
            for table, rows in small.items():
                piece = self._piece_file(table, rows.dtype, {**header, "MRGTABLE": table, "DATASHA": _digest(rows)},
                                         rows=rows)
                _append_hdus(piece, out, with_primary=False)
        shutil.rmtree(self._parts_dir, ignore_errors=True)

    def discard(self) -> None:
        for raw in self._raw.values():
            with contextlib.suppress(Exception):
                raw.close()
        shutil.rmtree(self._parts_dir, ignore_errors=True)


def _append_hdus(piece: Path, out, with_primary: bool) -> None:
    """Copy a one-table FITS file's extension HDU (and, first, its primary) byte for byte, then delete it.

    A FITS file is its HDUs one after the other (header and data each padded to 2880 bytes),
    so the file the pieces make is valid, and each HDU's CHECKSUM stays true.
    """
    with open(piece, "rb") as src:
        if not with_primary:
            src.seek(_primary_size(src, piece))
        shutil.copyfileobj(src, out, 16 << 20)
    piece.unlink()


def _primary_size(f, path: Path) -> int:
    """Bytes of a data-less primary HDU: its header blocks up to the ``END`` card."""
    block = 0
    while True:
        data = f.read(2880)
        if len(data) < 2880:
            raise OutputError(f"{path} has no complete primary header")
        block += 1
        cards = [data[i:i + 80] for i in range(0, 2880, 80)]
        if block == 1 and not cards[0].startswith(b"SIMPLE  ="):
            raise OutputError(f"{path} is not a FITS file")
        if any(c.rstrip() == b"END" for c in cards):
            return block * 2880


def _digest(rows: np.ndarray) -> str:
    d = TableDigest(rows.dtype)
    d.update(rows)
    return d.hexdigest()


def _hdf5_value(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | np.generic) else str(value)


class _BufferedWriter(Writer):
    """A writer that collects rows per table and writes them ~32 MiB at a time (:meth:`_write`).

    One resize (HDF5) or one row group (Parquet) per flush, not per realization; the memory held
    is bounded by the buffer, whatever the campaign's size.
    """

    #: Bytes of rows buffered per table before they are written.
    FLUSH_BYTES = 32 << 20

    def __init__(self, path: Path, tables: Mapping[str, np.dtype]):
        super().__init__(path, tables)
        self._buffers: dict[str, list[np.ndarray]] = {}
        self._buffered: dict[str, int] = {}
        for table in tables:
            self._start_buffer(table)

    def _start_buffer(self, table: str) -> None:
        self._buffers[table], self._buffered[table] = [], 0

    def _append(self, table: str, rows: np.ndarray) -> None:
        self._buffers[table].append(rows)
        self._buffered[table] += rows.nbytes
        if self._buffered[table] >= self.FLUSH_BYTES:
            self._flush(table)

    def _flush(self, table: str) -> None:
        if not self._buffers[table]:
            return
        rows = np.concatenate(self._buffers[table])
        self._start_buffer(table)
        self._write(table, rows)

    def _write(self, table: str, rows: np.ndarray) -> None:
        raise NotImplementedError


class Hdf5Writer(_BufferedWriter):
    """Datasets per column, grown a buffered ~32 MiB of rows at a time (one resize per flush, not per realization)."""

    #: Rows per HDF5 chunk, and the gzip level (with shuffle: a part-filled chunk costs its data, not its size).
    CHUNK_ROWS, GZIP_LEVEL = 16384, 1

    def __init__(self, path: Path, tables: Mapping[str, np.dtype], groups=None, final: Path | None = None):
        import h5py

        super().__init__(path, tables)
        self._file = h5py.File(str(path), "w", track_order=True)
        for table, dtype in self.dtypes.items():
            self._create(table, dtype)

    def _create(self, table: str, dtype: np.dtype) -> None:
        group = self._file.create_group(table, track_order=True)
        stored = _native(np.zeros(0, dtype=dtype), strings_as_bytes=True).dtype
        for name in stored.names:
            field = stored[name]
            group.create_dataset(name, shape=(0, *field.shape), maxshape=(None, *field.shape), dtype=field.base,
                                 chunks=(self.CHUNK_ROWS, *field.shape), fletcher32=True, shuffle=True,
                                 compression="gzip", compression_opts=self.GZIP_LEVEL)
        group.attrs["columns"] = json.dumps(list(dtype.names))
        group.attrs["dtype"] = _descr_json(dtype)
        self._start_buffer(table)

    def _write(self, table: str, rows: np.ndarray) -> None:
        group = self._file[table]
        data = _native(rows, strings_as_bytes=True)
        for name in data.dtype.names:
            ds = group[name]
            n = ds.shape[0]
            ds.resize(n + len(data), axis=0)
            ds[n:] = data[name]

    def _finish(self, header: dict[str, Any], small: dict[str, np.ndarray]) -> None:
        for table, rows in small.items():
            self._create(table, rows.dtype)
            self.dtypes[table] = rows.dtype
            self.digests[table] = TableDigest(rows.dtype)
            self.append(table, rows)
        for table in self.dtypes:
            self._flush(table)
        for key, value in header.items():
            self._file.attrs[key] = _hdf5_value(value)
        for table in self.dtypes:
            group = self._file[table]
            for key, value in {**header, **self.table_meta(table)}.items():
                group.attrs[key] = _hdf5_value(value)
        self._file.close()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()


class ParquetWriter(_BufferedWriter):
    """One Parquet file per table in the (temporary) directory; rows buffered into ~32 MiB row groups."""

    def __init__(self, path: Path, tables: Mapping[str, np.dtype], groups=None, final: Path | None = None):
        super().__init__(path, tables)
        self._writers: dict[str, Any] = {}

    def _schema(self, dtype: np.dtype):
        import pyarrow as pa

        fields = []
        for name in dtype.names:
            base, shape = dtype[name].base, dtype[name].shape
            kind = pa.string() if base.kind in "US" else pa.from_numpy_dtype(base.newbyteorder("="))
            fields.append(pa.field(name, pa.list_(kind, int(np.prod(shape))) if shape else kind))
        return pa.schema(fields)

    def _writer(self, table: str):
        import pyarrow.parquet as pq

        if table not in self._writers:
            self._writers[table] = pq.ParquetWriter(str(self.path / f"{table}.parquet"),
                                                    self._schema(self.dtypes[table]), write_page_checksum=True)
        return self._writers[table]

    def _arrow(self, rows: np.ndarray, schema):
        import pyarrow as pa

        data = _native(rows)
        arrays = []
        for name in data.dtype.names:
            col = data[name]
            if col.dtype.kind == "S":
                col = np.char.decode(col, "ascii")
            if col.ndim > 1:
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(col.reshape(-1)), col[0].size))
            else:
                arrays.append(pa.array(col))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _write(self, table: str, rows: np.ndarray) -> None:
        writer = self._writer(table)
        writer.write_table(self._arrow(rows, writer.schema))

    def _finish(self, header: dict[str, Any], small: dict[str, np.ndarray]) -> None:
        for table, rows in small.items():
            self.dtypes[table] = rows.dtype
            self.digests[table] = TableDigest(rows.dtype)
            self._start_buffer(table)
            self.append(table, rows)
        for table in self.dtypes:
            self._flush(table)
            writer = self._writer(table)  # an empty table still gets its file
            writer.add_key_value_metadata({
                "balrog.header": json.dumps(header, default=str), "balrog.tables": ",".join(self.dtypes),
                "balrog.dtype": _descr_json(self.dtypes[table]),
                "balrog.rows": str(self.table_meta(table)["rows"]), "balrog.sha256": self.table_meta(table)["sha256"]})
            writer.close()

    def discard(self) -> None:
        for writer in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()


WRITERS = {"fits": FitsWriter, "hdf5": Hdf5Writer, "parquet": ParquetWriter}


@contextlib.contextmanager
def open_writer(final: str | os.PathLike, fmt: str, tables: Mapping[str, np.dtype],
                groups: Mapping[str, list[tuple[str, list[str]]]] | None = None) -> Iterator[Writer]:
    """A writer of ``tables`` into a temporary beside ``final``, renamed onto it when the block ends well.

    ``groups`` (per table, :meth:`.join.JoinPlan.groups`) says where a FITS table may be cut
    into HDUs. The block must call :meth:`Writer.finish`. On any exception (or if it did not finish)
    nothing at ``final`` changes and the temporaries are removed; a full disk becomes a
    :class:`~balrog_runner.errors.DiskError` naming ``final``.
    """
    require_library(fmt)
    final = Path(final)
    holder = atomic_directory(final, replace=True) if fmt == "parquet" else atomic_path(final)
    with holder as tmp:
        try:
            writer = WRITERS[fmt](tmp, tables, groups, final=final)
        except OSError as exc:
            raise disk_error(exc, final) or OutputError(f"cannot write {final}: {exc}") from exc
        try:
            yield writer
            if not writer.finished:
                raise OutputError(f"merge of {final} ended before its file was complete")
            if tmp.is_dir():  # mkdtemp made it 0700; a directory output gets the umask's mode like a file
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o777 & ~umask)
        except BaseException as exc:
            full = disk_error(exc, final) if isinstance(exc, Exception) else None
            writer.discard()
            if full is not None and full is not exc:
                raise full from exc
            raise


# ============================================================================ readers


class Reader:
    """Rows, types and metadata of the tables of a merged file, whatever its format."""

    tables: list[str]

    def nrows(self, table: str) -> int:
        raise NotImplementedError

    def dtype(self, table: str) -> np.dtype:
        raise NotImplementedError

    def read(self, table: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def header(self) -> dict[str, Any]:
        """The file's provenance cards (those of its first table)."""
        raise NotImplementedError

    def table_meta(self, table: str) -> dict[str, Any]:
        """``{"rows": n, "sha256": hex}`` as written."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read_small(self, table: str) -> np.ndarray:
        return self.read(table)

    def chunks(self, table: str, budget: int = 32 << 20) -> Iterator[np.ndarray]:
        n, step = self.nrows(table), chunk_rows(self.dtype(table), budget)
        for start in range(0, n, step):
            yield self.read(table, start, min(n, start + step))

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FitsReader(Reader):
    """A merged FITS file; a table stored in several row-aligned HDUs (``MRGTABLE``) reads as one."""

    def __init__(self, path: Path):
        from astropy.io import fits  # parses a 900-column header 40x faster than fitsio does

        self.path = path
        self._opened = None
        self._headers: dict[str, dict[str, Any]] = {}
        self._pieces: dict[str, list[str]] = {}
        with fits.open(str(path), memmap=True, lazy_load_hdus=True) as hdul:
            for hdu in hdul[1:]:
                extname = str(hdu.header.get("EXTNAME", "")).strip()
                table = str(hdu.header.get("MRGTABLE", extname)).strip()
                self._pieces.setdefault(table, []).append(extname)
                if table not in self._headers:
                    self._headers[table] = {k: hdu.header[k] for k in hdu.header if k}
        self.tables = list(self._pieces)
        self._dtypes: dict[str, np.dtype] = {}

    @property
    def _fits(self):
        """fitsio's view, opened at the first row read (it reads every HDU's columns when opened)."""
        if self._opened is None:
            import fitsio

            self._opened = fitsio.FITS(str(self.path))
        return self._opened

    def read_small(self, table: str) -> np.ndarray:
        """A small table (REALIZATIONS, COLUMNS) through astropy, without opening the big HDUs."""
        from astropy.io import fits

        (extname,) = self._check(table)
        with fits.open(str(self.path), memmap=False, lazy_load_hdus=True) as hdul:
            data = hdul[extname].data
            return np.zeros(0, dtype=self._small_dtype(hdul[extname])) if data is None else np.array(data)

    @staticmethod
    def _small_dtype(hdu) -> np.dtype:
        return hdu.columns.dtype

    def _check(self, table: str) -> list[str]:
        if table not in self._pieces:
            raise InputFileError(f"{self.path} has no {table} table (a merged file has {', '.join(self.tables)})")
        return self._pieces[table]

    def nrows(self, table: str) -> int:
        self._check(table)
        return int(self._headers[table].get("NAXIS2", 0))

    def dtype(self, table: str) -> np.dtype:
        if table not in self._dtypes:
            descr = []
            for extname in self._check(table):
                descr += fits_rec_dtype(self._fits[extname]).descr
            self._dtypes[table] = np.dtype(descr)
        return self._dtypes[table]

    def read(self, table: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        n = self.nrows(table)
        stop = n if stop is None else min(stop, n)
        out = np.empty(max(0, stop - start), dtype=self.dtype(table))
        if stop <= start:
            return out
        for extname in self._check(table):
            piece = self._fits[extname][start:stop]
            for name in piece.dtype.names:
                out[name] = piece[name]
        return out

    def header(self) -> dict[str, Any]:
        return provenance_cards(self._headers[self.tables[0]]) if self.tables else {}

    def table_meta(self, table: str) -> dict[str, Any]:
        self._check(table)
        raw = self._headers[table]
        return {"rows": int(raw.get("NAXIS2", 0)), "sha256": str(raw.get("DATASHA", ""))}

    def verify_checksums(self) -> list[str]:
        """HDUs whose FITS DATASUM/CHECKSUM do not hold."""
        bad = []
        for pieces in self._pieces.values():
            for extname in pieces:
                result = self._fits[extname].verify_checksum()
                if result and (result.get("datasum") is False or result.get("hdu") is False):
                    bad.append(extname)
        return bad

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


class Hdf5Reader(Reader):
    def __init__(self, path: Path):
        import h5py

        self.path = path
        self._file = h5py.File(str(path), "r")
        self.tables = list(self._file.keys())

    def _group(self, table: str):
        if table not in self._file:
            raise InputFileError(f"{self.path} has no {table} group")
        return self._file[table]

    def nrows(self, table: str) -> int:
        group = self._group(table)
        names = json.loads(group.attrs["columns"])
        return int(group[names[0]].shape[0]) if names else 0

    def dtype(self, table: str) -> np.dtype:
        return _native(np.zeros(0, dtype=_dtype_from_json(self._group(table).attrs["dtype"])),
                       strings_as_bytes=True).dtype

    def read(self, table: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        group, dtype = self._group(table), self.dtype(table)
        n = self.nrows(table)
        stop = n if stop is None else min(stop, n)
        out = np.empty(max(0, stop - start), dtype=dtype)
        for name in dtype.names:
            out[name] = group[name][start:stop]
        return out

    def header(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self._file.attrs.items()}

    def table_meta(self, table: str) -> dict[str, Any]:
        attrs = self._group(table).attrs
        return {"rows": int(attrs.get("rows", -1)), "sha256": str(attrs.get("sha256", ""))}

    def close(self) -> None:
        self._file.close()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class ParquetReader(Reader):
    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.path = path
        self._files = {p.stem: pq.ParquetFile(str(p)) for p in sorted(path.glob("*.parquet"))}
        order = self._meta(next(iter(self._files))).get("balrog.tables", "") if self._files else ""
        self.tables = [t for t in order.split(",") if t in self._files] or list(self._files)

    def _file(self, table: str):
        if table not in self._files:
            raise InputFileError(f"{self.path} has no {table}.parquet")
        return self._files[table]

    def _meta(self, table: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in (self._files[table].metadata.metadata or {}).items()}

    def nrows(self, table: str) -> int:
        return int(self._file(table).metadata.num_rows)

    def dtype(self, table: str) -> np.dtype:
        return _native(np.zeros(0, dtype=_dtype_from_json(self._meta(table)["balrog.dtype"]))).dtype

    def read(self, table: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        f, dtype = self._file(table), self.dtype(table)
        n = self.nrows(table)
        stop = n if stop is None else min(stop, n)
        out = np.empty(max(0, stop - start), dtype=dtype)
        if stop <= start:
            return out
        groups, first, offset = [], None, 0
        for g in range(f.metadata.num_row_groups):
            size = f.metadata.row_group(g).num_rows
            if offset + size > start and offset < stop:
                groups.append(g)
                first = offset if first is None else first
            offset += size
        data = f.read_row_groups(groups).slice(start - first, stop - start)
        for name in dtype.names:
            col = data.column(name).to_numpy(zero_copy_only=False)
            if dtype[name].shape:
                col = np.stack(col).reshape((len(out), *dtype[name].shape))
            out[name] = col
        return out

    def header(self) -> dict[str, Any]:
        return json.loads(self._meta(self.tables[0])["balrog.header"]) if self.tables else {}

    def table_meta(self, table: str) -> dict[str, Any]:
        meta = self._meta(table)
        return {"rows": int(meta.get("balrog.rows", -1)), "sha256": meta.get("balrog.sha256", "")}


READERS = {"fits": FitsReader, "hdf5": Hdf5Reader, "parquet": ParquetReader}


def open_reader(path: str | os.PathLike, fmt: str | None = None) -> Reader:
    """A reader of the merged file at ``path``; an unreadable one is an InputFileError naming it."""
    path = Path(path)
    fmt = format_for(path, fmt)
    require_library(fmt)
    if not path.exists():
        raise InputFileError(f"merged file {path} does not exist")
    try:
        return READERS[fmt](path)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"cannot read the merged file {path}: {reason}") from exc

"""A small real HTTP file server on 127.0.0.1 that behaves like a DESDM archive, with faults.

The demo serves its synthetic survey with it (basic auth from a .netrc, as DESDM is used);
the fetch tests switch on its faults.

Tests (and the demo) serve a directory with HTTP basic auth and can switch on the
failures a real archive shows: a connection dropped mid-body, a file served truncated or
with flipped bytes (well-framed HTTP, corrupt FITS), 5xx responses, a forced 404.
Each fault fires a given number of times and then the server behaves again, so retry
logic can be exercised deterministically without sleeps.

The server records every request (path, status, whether it carried valid credentials) and
the highest number of requests it was serving at once, so tests can check that the client
downloads in parallel and that it does not re-download what it already has.

Usage::

    with ArchiveServer(root, credentials=("user", "secret")) as server:
        server.add_fault("drop", times=2, match="_g.fits.fz")
        url = server.url  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hmac
import http.server
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "truncate", "corrupt", "status", "missing", "stall", "html", "trickle", "redirect")
#: A trickling answer sends this many bytes every ``TRICKLE_INTERVAL`` seconds: each read
#: gets data well within any read timeout, so only an overall deadline ends it.
TRICKLE_BYTES, TRICKLE_INTERVAL = 512, 1.5


@dataclass
class Fault:
    """One switchable failure.

    ``kind``: ``drop`` (send the headers with the full Content-Length, half the body, then
    close the socket), ``truncate`` (serve the first half of the file with a matching
    Content-Length), ``corrupt`` (serve the whole file with some bytes in the middle
    flipped), ``status`` (answer ``status``, e.g. 503, with no body), ``missing`` (404),
    ``stall`` (send the headers, then no body until the server stops: the client must
    time out), ``html`` (200 with an HTML login page, as a single-sign-on proxy answers),
    ``trickle`` (the whole file, ``TRICKLE_BYTES`` every ``TRICKLE_INTERVAL`` seconds),
    ``redirect`` (302 to the same path under ``redirect_to``, e.g. another host).
    ``times``: how many matching requests it affects (``None``: all of them).
    ``match``: a glob on the request path (``*`` matches everything).
    """

    kind: str
    times: int | None = 1
    match: str = "*"
    status: int = 503
    redirect_to: str = ""

    def applies(self, path: str) -> bool:
        return (self.times is None or self.times > 0) and fnmatch.fnmatch(path, self.match)


@dataclass(frozen=True)
class RequestRecord:
    """What the server saw: request path, the status it answered, the fault applied (if any)."""

    path: str
    status: int
    fault: str | None


class ArchiveServer:
    """Serve ``root`` over HTTP on 127.0.0.1, optionally behind basic auth, with faults.

    ``delay`` (seconds) is added before each file response so that parallel clients
    overlap visibly on a fast loopback (it simulates network latency; it is not used to
    synchronise anything).
    """

    def __init__(
        self,
        root: str | Path,
        credentials: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
    ):
        self.root = Path(root).resolve()
        self._credentials = credentials
        self.host = host
        self.port = port
        self.delay = delay
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.records: list[RequestRecord] = []
        self._active = 0
        self.max_concurrency = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # releases stalled responses

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> ArchiveServer:
        """Bind and serve in a background thread; ``self.url`` is valid afterwards."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        handler = _make_handler(self)
        self._httpd = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # a short poll interval only bounds how long stop() waits for the loop to notice
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"archive-server-{self.port}", daemon=True,
        )
        self._thread.start()
        log.debug("archive server on %s serving %s", self.url, self.root)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ArchiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, without credentials (``http://127.0.0.1:<port>``)."""
        return f"http://{self.host}:{self.port}"

    # -- faults and records ----------------------------------------------------------
    def add_fault(self, kind: str, times: int | None = 1, match: str = "*", status: int = 503,
                  redirect_to: str = "") -> Fault:
        """Switch on a fault for the next ``times`` requests whose path matches ``match``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; allowed: {', '.join(FAULT_KINDS)}")
        fault = Fault(kind, times, match, status, redirect_to)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_records(self) -> None:
        with self._lock:
            self.records.clear()
            self.max_concurrency = 0

    def hits(self, pattern: str = "*") -> int:
        """Number of requests whose path matches the glob ``pattern``."""
        with self._lock:
            return sum(1 for r in self.records if fnmatch.fnmatch(r.path, pattern))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies(path):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _record(self, path: str, status: int, fault: str | None) -> None:
        with self._lock:
            self.records.append(RequestRecord(path, status, fault))

    def _enter(self) -> None:
        with self._lock:
            self._active += 1
            self.max_concurrency = max(self.max_concurrency, self._active)

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1

    def _authorized(self, header: str | None) -> bool:
        if self._credentials is None:
            return True
        if not header or not header.startswith("Basic "):
            return False
        user, password = self._credentials
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        return hmac.compare_digest(header[6:].strip(), expected)

    def _resolve(self, url_path: str) -> Path | None:
        rel = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path).lstrip("/")
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        return target


def _make_handler(server: ArchiveServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s %s", self.address_string(), format % args)

        def _empty(self, status: int, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = urllib.parse.urlsplit(self.path).path
            server._enter()
            try:
                self._serve(path)
            finally:
                server._leave()

        def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
            """What DESDM answers to a HEAD (``balrog-jobs`` probes the archive with one): the
            status and size of the file, no body. Faults are left for the GETs they are set for."""
            path = urllib.parse.urlsplit(self.path).path
            if not server._authorized(self.headers.get("Authorization")):
                self._empty(401, {"WWW-Authenticate": 'Basic realm="archive"'})
                return
            target = server._resolve(path)  # not recorded: the records count the downloads
            if target is None:
                self._empty(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(target.stat().st_size))
            self.end_headers()

        def _serve(self, path: str) -> None:
            if not server._authorized(self.headers.get("Authorization")):
                server._record(path, 401, None)
                self._empty(401, {"WWW-Authenticate": 'Basic realm="archive"'})
                return
            target = server._resolve(path)
            fault = server._take_fault(path)
            if fault is not None and fault.kind == "status":
                server._record(path, fault.status, "status")
                self._empty(fault.status)
                return
            if fault is not None and fault.kind == "redirect":
                server._record(path, 302, "redirect")
                self._empty(302, {"Location": fault.redirect_to.rstrip("/") + path})
                return
            if fault is not None and fault.kind == "html":
                server._record(path, 200, "html")
                page = b"<html><body>Please log in</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if target is None or (fault is not None and fault.kind == "missing"):
                server._record(path, 404, fault.kind if fault else None)
                self._empty(404)
                return
            if server.delay:
                time.sleep(server.delay)
            data = target.read_bytes()
            kind = fault.kind if fault else None
            server._record(path, 200, kind)
            if kind == "truncate":
                data = data[: len(data) // 2]
            elif kind == "corrupt":
                middle = len(data) // 2
                flipped = bytes(b ^ 0xFF for b in data[middle : middle + 16])
                data = data[:middle] + flipped + data[middle + 16 :]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if kind == "stall":
                self.wfile.flush()
                server._stopping.wait()
                return
            if kind == "trickle":
                for start in range(0, len(data), TRICKLE_BYTES):
                    if server._stopping.wait(TRICKLE_INTERVAL if start else 0):
                        return
                    try:
                        self.wfile.write(data[start:start + TRICKLE_BYTES])
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                return
            if kind == "drop":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.wfile.write(data)

    return Handler

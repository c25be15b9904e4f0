"""The fleet dashboard: one web page and three JSON endpoints over a telemetry store, served from a thread.

``GET /`` is ``dashboard.html`` (package data: inline CSS and JavaScript, its SVG charts drawn in the browser,
nothing fetched from the internet). The page polls:

- ``GET /api/devices``: ``{"now", "refresh_s", "devices": [...]}``, one summary per device (the store's
  :class:`~edgekit.telemetry.store.DeviceSummary`, with ``status`` ``"unknown"`` before a state arrived; its
  ``p99`` covers the 15 minutes up to the device's newest window, as ``edgekit fleet devices`` does).
- ``GET /api/series?device=D[&fleet=F][&minutes=N]``: ``{"fleet", "device", "minutes", "since", "now",
  "points": [...]}``, the device's windows that ended in the last ``N`` minutes (15; 1 to 1440), oldest first.
- ``GET /api/rollouts``: ``{"now", "rollouts": [...]}``, per command id (newest first) the latest step of each
  device, how many finished, and the model it is about.

A bad query (a missing ``device``, a bad value, a parameter the endpoint does not take, one given twice) is a
400, an unknown path a 404, a method other than GET a 405, a store that cannot be read a 503, each
``{"error": "..."}`` with one line that names the parameter and the fix.
The server is the standard library's threaded HTTP server (one thread per request, HTTP/1.0, so a stop never
waits on a browser's idle connection); the stores are safe to share between threads. There is no
authentication: it listens on loopback by default, and there it answers only requests whose ``Host`` is a
loopback name, so a web page cannot read it through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from edgekit.errors import ConfigError, EdgekitError
from edgekit.telemetry.messages import NAME

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from edgekit.telemetry.store import Store

logger = logging.getLogger("edgekit.fleet.dashboard")

DEFAULT_MINUTES = 15
MAX_MINUTES = 1440
#: the steps that end a command on a device
FINISHED = frozenset({"committed", "done", "rolled_back", "failed", "refused"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: the query parameters each endpoint takes
PARAMETERS: dict[str, tuple[str, ...]] = {
    "/api/devices": (),
    "/api/series": ("device", "fleet", "minutes"),
    "/api/rollouts": (),
}
SERIES_EXAMPLE = "/api/series?device=pi-7&fleet=lab&minutes=15"
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"


@dataclass(frozen=True)
class DashboardSettings:
    """Where the dashboard listens and how often its page polls; checked when made."""

    #: the address to listen on: loopback by default (there is no authentication)
    host: str = "127.0.0.1"
    #: the TCP port (0: any free one)
    port: int = 8765
    #: seconds between the page's polls
    refresh_s: float = 5.0
    #: the most command ids the rollouts view shows
    commands: int = 20

    def __post_init__(self) -> None:
        """Check every field, naming the option to fix."""
        if not self.host:
            raise ConfigError("--host is empty: give an address such as 127.0.0.1")
        if not 0 <= self.port <= 65535:  # noqa: PLR2004
            raise ConfigError(f"--port {self.port} is not a TCP port: use 1 to 65535")
        if self.refresh_s <= 0 or self.commands < 1:
            raise ConfigError("refresh_s must be more than 0 seconds and commands 1 or more")

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it."""
        if self.host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class DashboardApi:
    """The JSON answers, as plain functions of the store and a query string (no HTTP here)."""

    def __init__(self, store: Store, settings: DashboardSettings, *, clock: Callable[[], float] = time.time) -> None:
        """Answer from ``store``; ``clock`` gives the time the ranges end at."""
        self.store = store
        self.settings = settings
        self.clock = clock

    def devices(self) -> dict[str, Any]:
        """A summary per device."""
        found = [{**summary.to_json(), "status": summary.status or "unknown"} for summary in self.store.summary()]
        return {"now": self.clock(), "refresh_s": self.settings.refresh_s, "devices": found}

    def series(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """A device's windows over the last minutes; :class:`ConfigError` for a bad query."""
        check_parameters("/api/series", query)
        if "device" not in query:
            raise ConfigError(f"/api/series needs the parameter device, the device's name: e.g. {SERIES_EXAMPLE}")
        device = _name(query, "device")
        fleet = _name(query, "fleet") if "fleet" in query else None
        text = _one(query, "minutes")
        text = str(DEFAULT_MINUTES) if text is None else text
        if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= MAX_MINUTES:
            raise ConfigError(
                f"minutes {_shown(text)} is not a whole number from 1 to {MAX_MINUTES}: give e.g. minutes=15"
            )
        minutes = int(text)
        now = self.clock()
        since = now - 60 * minutes
        points = self.store.series(device, since=since, fleet=fleet)
        return {
            "fleet": fleet,
            "device": device,
            "minutes": minutes,
            "since": since,
            "now": now,
            "points": [p.to_json() for p in points],
        }

    def rollouts(self) -> dict[str, Any]:
        """Per command id, newest first: each device's latest step."""
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        for step in self.store.latest_events(commands=self.settings.commands):
            rollout = grouped.setdefault(
                (step.fleet, step.id),
                {
                    "fleet": step.fleet,
                    "id": step.id,
                    "command": step.command,
                    "model": None,
                    "last": step.time,
                    "devices": [],
                },
            )
            rollout["devices"].append(
                {"device": step.device, "status": step.status, "time": step.time, "detail": step.detail}
            )
            rollout["model"] = rollout["model"] or step.model
            rollout["last"] = max(rollout["last"], step.time)
        for rollout in grouped.values():
            statuses = [d["status"] for d in rollout["devices"]]
            rollout["finished"] = sum(status in FINISHED for status in statuses)
            rollout["counts"] = {status: statuses.count(status) for status in sorted(set(statuses))}
        return {"now": self.clock(), "rollouts": list(grouped.values())}


class Dashboard:
    """The web server: ``with Dashboard(store, settings) as dashboard: print(dashboard.url)``."""

    def __init__(self, store: Store, settings: DashboardSettings, *, clock: Callable[[], float] = time.time) -> None:
        """Get ready to serve ``store`` (which the caller opens and closes)."""
        self.settings = settings
        self.api = DashboardApi(store, settings, clock=clock)
        self.page = resources.files("edgekit.fleet").joinpath("dashboard.html").read_bytes()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Dashboard:  # noqa: PYI034  (typing.Self needs Python 3.11; we support 3.10)
        """Start serving."""
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Stop serving."""
        self.stop()

    def start(self) -> None:
        """Listen (:class:`ConfigError` when the address cannot be had) and serve from a thread."""
        if self._server is not None:
            raise ConfigError("the dashboard is already serving: stop it first")
        host, port = self.settings.host, self.settings.port
        try:
            self._server = _Server((host, port), self)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): give another --port, or a --host of this"
                " machine"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="edgekit-dashboard", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for port 0)."""
        if self._server is None:
            raise ConfigError("the dashboard is not serving: start it first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The page's address (a wildcard host is shown as 127.0.0.1)."""
        host = self.settings.host
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 (a name, not a bind)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edgekit-dashboard"

    def do_GET(self) -> None:
        """Answer one GET."""
        dashboard = self.server.dashboard
        if dashboard.settings.loopback and not _loopback_host(self.headers.get("Host", "")):
            self._json(403, {"error": "the dashboard answers only to a loopback Host on a loopback address"})
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        routes: dict[str, Callable[[], dict[str, Any]]] = {
            "/api/devices": dashboard.api.devices,
            "/api/series": lambda: dashboard.api.series(query),
            "/api/rollouts": dashboard.api.rollouts,
        }
        if url.path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", dashboard.page, {"Content-Security-Policy": _CSP})
            return
        if url.path not in routes:
            self._json(404, {"error": f"no page at {url.path}: the API is /api/devices, /api/series, /api/rollouts"})
            return
        try:
            check_parameters(url.path, query)
            body = routes[url.path]()
        except ConfigError as exc:
            self._json(400, {"error": str(exc)})
        except EdgekitError as exc:
            logger.warning("cannot answer %s: %s", url.path, exc)
            self._json(503, {"error": str(exc)})
        except Exception:
            logger.exception("the dashboard failed on %s", self.path)
            self._json(500, {"error": "the dashboard failed: see its log"})
        else:
            self._json(200, body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A method other than GET is a 405 (http.server says 501, a server error); other errors as it says them."""
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            error = f"method {_shown(self.command)} is not allowed: the dashboard answers GET only"
            self._json(405, {"error": error}, {"Allow": "GET"})
            return
        super().send_error(code, message, explain)

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        self._send(status, "application/json", data, headers or {})

    def _send(self, status: int, kind: str, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {
            "Content-Type": kind,
            "Content-Length": str(len(data)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            **headers,
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        """Requests go to the debug log, not to stderr."""
        logger.debug("%s %s", self.address_string(), format % args)


def _loopback_host(header: str) -> bool:
    """Whether a ``Host`` header names this machine: localhost, 127.x.y.z or [::1], with or without a port."""
    host = header[1:].partition("]")[0] if header.startswith("[") else header.partition(":")[0]
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_parameters(path: str, query: dict[str, list[str]]) -> None:
    """:class:`ConfigError` for a parameter ``path`` does not take, or one given more than once."""
    takes = PARAMETERS[path]
    for key, values in query.items():
        if key not in takes:
            what = f"takes {', '.join(takes)}: e.g. {SERIES_EXAMPLE}" if takes else "takes no parameters"
            raise ConfigError(f"{path} has no parameter {_shown(key)}: it {what}")
        if len(values) > 1:
            raise ConfigError(f"{path}: {key} is given {len(values)} times: give it once")


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _name(query: dict[str, list[str]], key: str) -> str:
    value = _one(query, key) or ""
    if not NAME.fullmatch(value):
        raise ConfigError(f"{key} {_shown(value)} is not a {key} name: give 1 to 64 of A-Z a-z 0-9 . _ -")
    return value


def _shown(text: str) -> str:
    """``text`` quoted for an error line, cut to 40 characters."""
    return repr(text if len(text) <= 40 else text[:40] + "…")  # noqa: PLR2004

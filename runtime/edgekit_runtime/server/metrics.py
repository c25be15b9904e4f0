"""``GET /metrics``: counters, gauges and histograms in Prometheus' text exposition format 0.0.4.

Recording is a dict lookup and an integer add: everything is recorded on the event loop, which is one
thread, so nothing needs a lock (inference threads hand their timings back to the loop). Histograms
keep fixed buckets; :meth:`Histogram.observe` finds the bucket with :func:`bisect.bisect_left`, so a
value equal to a bound counts in that bound's bucket, as Prometheus' ``le`` says.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from edgekit_runtime.model import Model

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: when this module was first imported: the serve command imports it within a second of starting
PROCESS_START = time.time()

#: seconds, from a fraction of a millisecond (a small model on a warm connection) to ten seconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: samples per backend call
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Labels = tuple[str, ...]
#: one process's metrics: each metric's ``state()`` by name (plain values: it crosses processes)
Snapshot = dict[str, Any]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer() and abs(value) < 1 << 53:
        return str(int(value))
    return repr(float(value))


@dataclass
class Counter:
    """A monotonically increasing count per label set."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: Labels = (), amount: float = 1) -> None:
        """Add ``amount`` (default 1) to the series ``labels``."""
        self.values[labels] = self.values.get(labels, 0) + amount

    def state(self) -> dict[Labels, float]:
        """Its values, to be merged with another process's (:meth:`absorb`)."""
        return dict(self.values)

    def absorb(self, state: Mapping[Labels, float]) -> None:
        """Add another process's values."""
        for labels, value in state.items():
            self.inc(labels, value)

    def render(self) -> list[str]:
        """Its exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_label_text(self.label_names, k)} {_number(v)}" for k, v in self.values.items()]
        return lines


@dataclass
class Gauge:
    """A value that goes up and down, per label set."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    values: dict[Labels, float] = field(default_factory=dict)
    #: how the values of several processes combine (:meth:`absorb`)
    merge: Literal["sum", "max", "min"] = "sum"

    def set(self, value: float, labels: Labels = ()) -> None:
        """Set the series ``labels`` to ``value``."""
        self.values[labels] = value

    def get(self, labels: Labels = ()) -> float:
        """The series ``labels``' value (0 when never set)."""
        return self.values.get(labels, 0)

    def add(self, amount: float, labels: Labels = ()) -> None:
        """Move the series ``labels`` by ``amount``."""
        self.values[labels] = self.values.get(labels, 0) + amount

    def state(self) -> dict[Labels, float]:
        """Its values, to be merged with another process's (:meth:`absorb`)."""
        return dict(self.values)

    def absorb(self, state: Mapping[Labels, float]) -> None:
        """Combine another process's values with these, by :attr:`merge`."""
        for labels, value in state.items():
            mine = self.values.get(labels)
            if mine is None:
                self.values[labels] = value
            elif self.merge == "sum":
                self.values[labels] = mine + value
            else:
                self.values[labels] = max(mine, value) if self.merge == "max" else min(mine, value)

    def render(self) -> list[str]:
        """Its exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        lines += [f"{self.name}{_label_text(self.label_names, k)} {_number(v)}" for k, v in self.values.items()]
        return lines


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Histogram:
    """Observations counted into fixed buckets, with their sum and count, per label set."""

    name: str
    help: str
    bounds: tuple[float, ...]
    label_names: tuple[str, ...] = ()
    series: dict[Labels, _Series] = field(default_factory=dict)

    def observe(self, value: float, labels: Labels = ()) -> None:
        """Count one observation."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series([0] * (len(self.bounds) + 1))
        series.counts[bisect_left(self.bounds, value)] += 1
        series.total += value
        series.count += 1

    def state(self) -> dict[Labels, tuple[list[int], float, int]]:
        """Its series, to be merged with another process's (:meth:`absorb`)."""
        return {labels: (list(s.counts), s.total, s.count) for labels, s in self.series.items()}

    def absorb(self, state: Mapping[Labels, tuple[list[int], float, int]]) -> None:
        """Add another process's series."""
        for labels, (counts, total, count) in state.items():
            series = self.series.get(labels)
            if series is None:
                series = self.series[labels] = _Series([0] * (len(self.bounds) + 1))
            series.counts = [a + b for a, b in zip(series.counts, counts, strict=True)]
            series.total += total
            series.count += count

    def render(self) -> list[str]:
        """Its exposition lines: cumulative ``_bucket`` series up to ``+Inf``, then ``_sum`` and ``_count``."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        edges = [*self.bounds, float("inf")]
        for labels, series in self.series.items():
            running = 0
            for bound, count in zip(edges, series.counts, strict=True):
                running += count
                text = _label_text((*self.label_names, "le"), (*labels, _number(bound)))
                lines.append(f"{self.name}_bucket{text} {running}")
            text = _label_text(self.label_names, labels)
            lines.append(f"{self.name}_sum{text} {_number(series.total)}")
            lines.append(f"{self.name}_count{text} {series.count}")
        return lines


class ServerMetrics:
    """Everything ``/metrics`` reports about one served model."""

    def __init__(self, *, name: str, version: str, sha256: str, backend: str, load_seconds: float) -> None:
        """Create the series; the model's identity goes into ``edgekit_model_info``."""
        self.requests = Counter(
            "edgekit_requests_total", "HTTP requests answered, by protocol and status code.", ("protocol", "code")
        )
        self.request_seconds = Histogram(
            "edgekit_request_duration_seconds",
            "Time from a request's headers to the end of its response, by protocol.",
            LATENCY_BUCKETS,
            ("protocol",),
        )
        self.inference_seconds = Histogram(
            "edgekit_inference_duration_seconds", "Time of one backend call (one batch).", LATENCY_BUCKETS
        )
        self.batch_size = Histogram("edgekit_batch_size", "Samples per backend call.", BATCH_BUCKETS)
        self.inflight = Gauge("edgekit_inflight_requests", "HTTP requests being answered now.")
        self.inflight.set(0)
        self.connections_closed = Counter(
            "edgekit_connections_closed_total",
            "Connections the server's limits closed: idle, header_timeout, head_too_large, evicted (for a new one "
            "past --max-connections), refused (past it with none idle).",
            ("reason",),
        )
        self.memory_reserved = Gauge(
            "edgekit_memory_reserved_bytes",
            "Memory budget held by requests now: their bodies and what they decode into.",
        )
        self.memory_reserved.set(0)
        self.model_info = Gauge(
            "edgekit_model_info", "The model being served (always 1).", ("name", "version", "sha256", "backend")
        )
        self.model_info.set(1, (name, version, sha256, backend))
        self.model_info.merge = "max"
        self.load_seconds = Gauge(
            "edgekit_model_load_seconds", "Time to verify, load, warm up and self-test the model.", merge="max"
        )
        self.load_seconds.set(load_seconds)
        self.start_time = Gauge(
            "process_start_time_seconds", "Start time of the process since the Unix epoch.", merge="min"
        )
        self.start_time.set(PROCESS_START)

    def set_model(self, model: Model) -> None:
        """A new model is served: ``edgekit_model_info`` and the load time say which."""
        self.model_info.values.clear()
        self.model_info.set(1, (model.name, model.version, model.sha256, model.backend.name))
        self.load_seconds.set(model.load_seconds)

    def _all(self) -> tuple[Counter | Gauge | Histogram, ...]:
        return (
            self.requests,
            self.request_seconds,
            self.inference_seconds,
            self.batch_size,
            self.inflight,
            self.connections_closed,
            self.memory_reserved,
            self.model_info,
            self.load_seconds,
            self.start_time,
        )

    def snapshot(self) -> Snapshot:
        """Every series' values now, by metric name: what one worker process tells the others."""
        return {metric.name: metric.state() for metric in self._all()}

    def render(self) -> bytes:
        """The whole exposition, ending with a newline."""
        lines: list[str] = []
        for metric in self._all():
            lines += metric.render()
        return ("\n".join(lines) + "\n").encode()


def render_merged(snapshots: Sequence[Snapshot]) -> bytes:
    """The exposition of several worker processes' :meth:`ServerMetrics.snapshot` as one server's.

    Counts and histograms add up, as do requests in flight and memory held; the model's identity and load
    time are the latest (a model that workers swap at slightly different moments shows both identities for
    that moment), and the start time the earliest. ``edgekit_worker_requests_total`` says how the workers'
    requests are spread, one series per worker, in the order given.
    """
    total = ServerMetrics(name="", version="", sha256="", backend="", load_seconds=0.0)
    for metric in total._all():  # noqa: SLF001  (the same class)
        if isinstance(metric, Histogram):  # nothing yet: every value comes from the snapshots
            metric.series.clear()
        else:
            metric.values.clear()
    for snap in snapshots:
        for metric in total._all():  # noqa: SLF001
            metric.absorb(snap.get(metric.name, {}))
    spread = Counter("edgekit_worker_requests_total", "HTTP requests answered by each worker process.", ("worker",))
    for index, snap in enumerate(snapshots):
        spread.inc((str(index),), sum(snap.get(total.requests.name, {}).values()))
    return total.render() + ("\n".join(spread.render()) + "\n").encode()


#: what each telemetry number means, and its Prometheus type
TELEMETRY_HELP = {
    "outbox_windows": ("gauge", "Telemetry windows waiting in the outbox for the broker."),
    "outbox_bytes": ("gauge", "Payload bytes waiting in the outbox."),
    "outbox_replay_windows": ("gauge", "Sent telemetry windows kept for the collector to ask for again."),
    "outbox_dropped_total": ("counter", "Telemetry windows ever dropped to keep the outbox within its bounds."),
    "broker_connected": ("gauge", "1 while the telemetry publisher is connected to the broker."),
    "sent_windows_total": ("counter", "Telemetry windows the broker acknowledged since the start."),
}


def telemetry_metrics(status: Mapping[str, float]) -> bytes:
    """The telemetry numbers as exposition lines (``edgekit_telemetry_*``)."""
    lines: list[str] = []
    for key, value in status.items():
        kind, text = TELEMETRY_HELP.get(key, ("gauge", key))
        name = f"edgekit_telemetry_{key}"
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {_number(value)}"]
    return ("\n".join(lines) + "\n").encode() if lines else b""

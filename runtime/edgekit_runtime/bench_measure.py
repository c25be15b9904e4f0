"""What a bundle costs on this device, measured, as the bench JSON document.

Measured, in this order:

1. **latency** at batch 1 with 1, 2, … ``--threads`` engine threads (ONNX Runtime's intra-op threads,
   LiteRT's interpreter threads): each a freshly loaded model, called one request at a time for ``--seconds``
   (and at least 20 calls); p50, p90, p99 and the mean of the calls;
2. **throughput** at ``--batch`` samples per call with the most threads: samples per second;
3. **cold start**, ``--cold-starts`` times: a fresh ``edgekit-runtime serve`` process from its start to its
   first answer over HTTP, and its **RSS** (``VmRSS``, ``VmHWM``) after that answer
   (:mod:`edgekit_runtime.cold_start`).

The inputs are the bundle's golden inputs (real samples, repeated to fill a batch); a plain ``.onnx`` gets
random values of its inputs' shapes. The JSON (schema ``edgekit.bench/1``, docs/bench.schema.json) carries
the platform facts ``edgekit-runtime doctor`` gathers, so ``edgekit bench-compare a.json b.json`` on the host
can put devices side by side::

    {"schema": "edgekit.bench/1", "created": "2026-11-25T10:00:00Z", "device": "pi-7",
     "runtime": {"version": "0.1.0"}, "platform": {…doctor's facts…},
     "model": {"name", "version", "sha256", "file", "backend", "backend_version", "devices", "fixed_batch"},
     "settings": {"threads": [1, 2, 3, 4], "batch": 8, "seconds": 2.0, "cold_starts": 3},
     "latency": [{"threads", "batch", "calls", "seconds", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "samples_per_s"}],
     "throughput": {…the same fields…},
     "load_s": 0.05,
     "memory": {"rss_bytes", "hwm_bytes"} or null,
     "cold_start": {"runs", "ready_s", "first_answer_s", "samples": [{"ready_s", "first_answer_s",
                    "rss_bytes", "hwm_bytes"}]} or null}

Medians over the cold starts; ``memory`` is the median RSS and the highest peak of the serving processes.
"""

from __future__ import annotations

import datetime as dt
import functools
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgekit_runtime import __version__
from edgekit_runtime.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    import numpy as np

    from edgekit_runtime.cold_start import ColdStart
    from edgekit_runtime.model import LoadOptions, Model
    from edgekit_runtime.platform_facts import Platform
    from edgekit_runtime.specs import TensorSpec
    from edgekit_runtime.targets import Target

SCHEMA = "edgekit.bench/1"
#: the engines' distributions, in the order the backends prefer them
_DISTRIBUTIONS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "litert": ("ai-edge-litert", "tflite-runtime")}


@dataclass(frozen=True)
class BenchConfig:
    """What to measure."""

    #: latency at 1 … ``threads`` engine threads; throughput at ``threads``
    threads: int
    batch: int = 8
    seconds: float = 2.0
    min_calls: int = 20
    cold_starts: int = 3

    def __post_init__(self) -> None:
        """One-line errors for settings that cannot work."""
        if self.threads < 1:
            raise ConfigError(f"--threads {self.threads} is not a thread count: use 1 or more")
        if self.batch < 1:
            raise ConfigError(f"--batch {self.batch} is not a batch size: use 1 or more")
        if not 0 < self.seconds <= 3600:  # noqa: PLR2004
            raise ConfigError(f"--seconds {self.seconds} is out of range: use more than 0, at most 3600")
        if self.cold_starts < 0:
            raise ConfigError(f"--cold-starts {self.cold_starts} is negative: use 0 (skip) or more")


@dataclass(frozen=True)
class Timing:
    """Calls of one model at one thread count and batch size."""

    threads: int
    batch: int
    calls: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def samples_per_s(self) -> float:
        """Samples answered per second, one call at a time."""
        return self.batch * self.calls / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """As the bench JSON holds it."""
        doc: dict[str, Any] = {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return doc | {"samples_per_s": round(self.samples_per_s, 2)}


def time_calls(
    call: Callable[[], object], seconds: float, min_calls: int, clock: Callable[[], int] = time.perf_counter_ns
) -> list[int]:
    """Call ``call`` until ``seconds`` passed and at least ``min_calls`` were made; each call's nanoseconds."""
    durations: list[int] = []
    end = clock() + int(seconds * 1e9)
    while len(durations) < min_calls or clock() < end:
        start = clock()
        call()
        durations.append(clock() - start)
    return durations


def summarize(durations_ns: list[int], threads: int, batch: int) -> Timing:
    """Percentiles (NumPy's linear interpolation) and the mean of the calls, in milliseconds."""
    import numpy as np

    ms = np.asarray(durations_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return Timing(threads, batch, len(ms), float(ms.sum()) / 1e3, p50, p90, p99, float(ms.mean()))


def sample_feeds(model: Model, golden: Mapping[str, np.ndarray] | None, batch: int) -> dict[str, np.ndarray]:
    """``batch`` samples for each input: the golden ones repeated, or random values of the input's shape."""
    import numpy as np

    if not model.batched:  # a fixed batch: what the model takes, as its self-test ran it
        return {s.name: golden[s.name] if golden else _random(s, 1) for s in model.inputs}
    feeds = {}
    for spec in model.inputs:
        if golden and spec.name in golden and len(golden[spec.name]):
            value = golden[spec.name]
            feeds[spec.name] = value[np.arange(batch) % len(value)]
        else:
            feeds[spec.name] = _random(spec, batch)
    return feeds


def _random(spec: TensorSpec, batch: int) -> np.ndarray:
    import numpy as np

    dims = list(spec.shape or ())
    shape = tuple(d if isinstance(d, int) else 1 for d in dims)
    if dims and not isinstance(dims[0], int):
        shape = (batch, *shape[1:])
    if spec.dtype == "string":
        return np.full(shape, "", dtype=object)
    kind = np.dtype(spec.dtype).kind
    if kind == "f":
        return np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
    return np.zeros(shape, dtype=spec.dtype)


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _golden(path: Path, options: LoadOptions) -> dict[str, np.ndarray] | None:
    from edgekit_runtime.bundle import open_bundle
    from edgekit_runtime.bundle_format import GOLDEN
    from edgekit_runtime.golden import Golden

    if path.suffix == ".onnx":
        return None
    bundle = open_bundle(path, trusted_keys=options.trusted_keys, require_signature=options.require_signature)
    return Golden.from_bytes(bundle.read(GOLDEN)).inputs


def _engine_version(backend: str, platform: Platform) -> str | None:
    for name in _DISTRIBUTIONS.get(backend, ()):
        engine = platform.engine(name)
        if engine is not None:
            return engine.version
    return None


def _latency(
    path: Path,
    config: BenchConfig,
    options: LoadOptions,
    golden: Mapping[str, np.ndarray] | None,
    say: Callable[[str], None],
) -> tuple[list[Timing], Model]:
    """Batch 1 at 1 … ``config.threads`` threads, a freshly loaded model each; the timings and the last model."""
    import dataclasses

    from edgekit_runtime.model import load

    latency: list[Timing] = []
    model = None
    for threads in range(1, config.threads + 1):
        model = None  # let the previous model go before the next loads
        model = load(path, dataclasses.replace(options, backend=dataclasses.replace(options.backend, threads=threads)))
        say(f"latency at batch 1, {threads} thread{'s' if threads > 1 else ''}")
        feeds = sample_feeds(model, golden, 1)
        durations = time_calls(functools.partial(model.run, feeds), config.seconds, config.min_calls)
        latency.append(summarize(durations, threads, _batch_of(feeds)))
    if model is None:  # pragma: no cover  (BenchConfig needs threads >= 1)
        raise ConfigError("nothing measured: use --threads 1 or more")
    return latency, model


def measure(
    path: Path,
    config: BenchConfig,
    options: LoadOptions,
    platform: Platform,
    *,
    serve_args: tuple[str, ...] = (),
    say: Callable[[str], None] = lambda _: None,
    target: Target | None = None,
) -> dict[str, Any]:
    """Measure ``path`` on this device (for ``target``'s profile, if given); the bench JSON document."""
    from edgekit_runtime import cold_start

    golden = _golden(path, options)
    latency, model = _latency(path, config, options, golden, say)
    batch_feeds = sample_feeds(model, golden, config.batch)
    batch = _batch_of(batch_feeds)
    say(f"throughput at batch {batch}, {config.threads} thread{'s' if config.threads > 1 else ''}")
    durations = time_calls(functools.partial(model.run, batch_feeds), config.seconds, config.min_calls)
    throughput = summarize(durations, config.threads, batch)
    starts = []
    for i in range(config.cold_starts):
        say(f"cold start {i + 1} of {config.cold_starts}: a fresh serve process")
        starts.append(cold_start.measure(path, model.name, sample_feeds(model, golden, 1), serve_args))
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": socket.gethostname(),
        "runtime": {"version": __version__},
        "platform": platform.to_json(),
        "model": {
            "name": model.name,
            "version": model.version,
            "sha256": model.sha256,
            "file": path.name,
            "backend": model.backend.name,
            "backend_version": _engine_version(model.backend.name, platform),
            "devices": list(model.backend.devices),
            "fixed_batch": not model.batched,
        },
        "settings": {
            "threads": list(range(1, config.threads + 1)),
            "batch": batch,
            "seconds": config.seconds,
            "cold_starts": config.cold_starts,
            "target": None if target is None else target.name,
        },
        "latency": [t.to_json() for t in latency],
        "throughput": throughput.to_json(),
        "load_s": round(model.load_seconds, 4),
        "memory": _memory(starts),
        "cold_start": _cold(starts),
    }


def _memory(starts: list[ColdStart]) -> dict[str, int] | None:
    if not starts:
        return None
    return {
        "rss_bytes": int(statistics.median(s.rss_bytes for s in starts)),
        "hwm_bytes": max(s.hwm_bytes for s in starts),
    }


def _cold(starts: list[ColdStart]) -> dict[str, Any] | None:
    if not starts:
        return None
    return {
        "runs": len(starts),
        "ready_s": round(statistics.median(s.ready_s for s in starts), 4),
        "first_answer_s": round(statistics.median(s.first_answer_s for s in starts), 4),
        "samples": [s.to_json() for s in starts],
    }

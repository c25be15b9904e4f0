"""A window of numbers (``edgekit.telemetry/1``), and a batch of windows (``edgekit.telemetry-batch/1``).

The device's recorder counts a :class:`WindowNumbers` (:meth:`edgekit_runtime.telemetry.window.Window.numbers`),
puts who sends it around it (a :class:`WindowBody`) and stores that in its outbox; the publisher adds ``seq``
and the outbox's counts as it sends (a :class:`Window`), one alone or several in a :class:`Batch`.
"""

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from edgekit_runtime.contract.values import Count, Name, NonNegative, Positive, PositiveCount, Seconds, Sha256, Text

WINDOW_SCHEMA = "edgekit.telemetry/1"
BATCH_SCHEMA = "edgekit.telemetry-batch/1"

#: what failed requests are counted as (the server's statuses map to these)
ErrorKind = Literal["invalid_input", "timeout", "too_large", "bad_request", "client_gone", "server_error"]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
#: a batch size as an object key: a whole number in decimal
BatchSize = Annotated[str, Meta(pattern=r"^(0|[1-9][0-9]*)$")]


class ModelIdentity(msgspec.Struct, forbid_unknown_fields=True):
    """The model the device serves."""

    name: Text
    version: Text
    sha256: Sha256
    backend: Annotated[str, Meta(min_length=1, description="The inference engine (onnxruntime, litert).")]


class RuntimeInfo(msgspec.Struct, forbid_unknown_fields=True):
    """The edgekit-runtime that sends."""

    version: str


class Feature(msgspec.Struct, forbid_unknown_fields=True):
    """One feature of an input in this window, counted in the reference's bins.

    mean, std, min and max are null when the values held NaN or infinities.
    """

    index: Count
    count: PositiveCount
    mean: float | None
    std: NonNegative | None
    min: float | None
    max: float | None
    bins: Annotated[list[Count], Meta(min_length=1, description="Values in each of the reference's bins.")]
    psi: Annotated[
        NonNegative | None,
        Meta(description="Population stability index against the reference; null below the recorder's min_samples."),
    ]
    drift: Annotated[bool, Meta(description="psi above the recorder's threshold (0.2).")]


class InputStats(msgspec.Struct, forbid_unknown_fields=True):
    """An input with reference statistics in the bundle."""

    name: str
    features: Annotated[list[Feature], Meta(min_length=1)]


class Latency(msgspec.Struct, forbid_unknown_fields=True):
    """Request latency on the server in fixed buckets.

    counts has one more element than buckets (the last is everything slower). A percentile is the upper bound of
    the bucket holding it; null for an empty window, and also when it falls in the last, unbounded bucket.
    """

    buckets: Annotated[list[Positive], Meta(min_length=1, description="Upper bounds in milliseconds, increasing.")]
    counts: Annotated[list[Count], Meta(min_length=2)]
    mean: NonNegative | None
    p50: Positive | None
    p90: Positive | None
    p99: Positive | None


class Outputs(msgspec.Struct, forbid_unknown_fields=True):
    """Empty unless the model's first output is labels."""

    classes: (
        Annotated[dict[str, PositiveCount], Meta(min_length=1, description="Counts of each predicted label.")]
        | UnsetType
    ) = UNSET


class System(msgspec.Struct, forbid_unknown_fields=True):
    """How the device is doing; null for what the platform does not tell."""

    cpu_percent: Annotated[
        NonNegative | None,
        Meta(description="The whole machine's busy share since the last window (100: every core busy)."),
    ]
    process_cpu_percent: Annotated[
        NonNegative | None,
        Meta(description="This process's CPU time over the window's wall time (100: one core; it can pass 100)."),
    ]
    rss_bytes: Count | None
    load: (
        Annotated[list[NonNegative], Meta(min_length=3, max_length=3, description="1, 5 and 15 minute load averages.")]
        | None
    )
    disk_free_bytes: Count | None
    temperature_c: float | None


class OutboxCounts(msgspec.Struct, forbid_unknown_fields=True):
    """The device's outbox when this window was sent."""

    dropped: Annotated[
        Count,
        Meta(
            description="Windows ever dropped: to stay within bounds, or lost because the outbox could not be "
            "written (a full disk)."
        ),
    ]
    pending: Annotated[Count, Meta(description="Windows waiting, this one included.")]


class WindowNumbers(msgspec.Struct, kw_only=True):
    """What a window counted (keyword-only: in a :class:`WindowBody` these come after who sent them)."""

    requests: Annotated[Count, Meta(description="Inference requests, failed ones included.")]
    errors: Annotated[dict[ErrorKind, PositiveCount], Meta(description="Failed requests by kind.")]
    batch_sizes: Annotated[
        dict[BatchSize, PositiveCount], Meta(description="Successful requests by the number of samples they held.")
    ]
    latency_ms: Latency
    inputs: list[InputStats]
    drift: Annotated[bool, Meta(description="Any feature drifted.")]
    outputs: Outputs
    sampled: Annotated[
        Count, Meta(description="Successful requests whose inputs and first output the features and classes count.")
    ]


class WindowBody(WindowNumbers, tag_field="schema", tag=WINDOW_SCHEMA, forbid_unknown_fields=True):
    """One window as the device stores it: the numbers, and who sent them (without ``seq`` and ``outbox``)."""

    fleet: Name
    device: Name
    window_start: Seconds
    window_end: Seconds
    model: ModelIdentity
    runtime: RuntimeInfo
    system: Annotated[System | None, Meta(description="null when the runtime samples no system numbers.")]


class Window(WindowBody, tag=WINDOW_SCHEMA):
    """One window of numbers (edgekit.telemetry/1)."""

    seq: Annotated[
        PositiveCount,
        Meta(description="Per device, from 1, increasing across restarts; the same seq can arrive twice."),
    ]
    outbox: OutboxCounts


class Batch(msgspec.Struct, tag_field="schema", tag=BATCH_SCHEMA, forbid_unknown_fields=True):
    """Several windows in one message, sent when a backlog builds (edgekit.telemetry-batch/1).

    A single window is always sent as a window.
    """

    fleet: Name
    device: Name
    windows: Annotated[list[Window], Meta(min_length=2)]

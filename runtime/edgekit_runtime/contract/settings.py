"""The settings ``set-config`` changes on a running device, with their ranges: said once.

:class:`SettingsChange` is what a ``set-config`` command's ``config`` may hold (any of the settings, the
device decodes it key by key: :func:`edgekit_runtime.fleet.settings.check`); :class:`DeviceSettings` is the
retained state's ``config``, every setting as in effect. Both take the ranges below, so a value the state could
carry is a value ``set-config`` takes, and the other way round. Every range is finite: a value the device could
not encode again (``min_requests`` 1e30) would break every later state message.
"""

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

#: seconds a newly deployed model is watched before it is committed (0: at once)
DeployWatch = Annotated[float, Meta(ge=0, le=86_400)]
#: the watch rolls back above this share of 5xx answers
MaxErrorRate = Annotated[float, Meta(ge=0, le=1)]
#: ... or above this multiple of the old model's mean latency
MaxLatencyRatio = Annotated[float, Meta(gt=0, le=1_000)]
#: requests each side needs before the watch judges (fewer: it commits)
MinRequests = Annotated[int, Meta(ge=0, le=1_000_000)]
#: seconds per telemetry window
TelemetryInterval = Annotated[float, Meta(ge=0.05, le=86_400)]
#: a ``log_level`` the device runs with (``--log-level`` takes every one of these)
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
#: a ``log_level`` ``set-config`` sets
SettableLogLevel = Literal["debug", "info", "warning", "error"]


class DeviceSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The settings set-config changes, as in effect (a fleet agent's state only; docs/fleet.md)."""

    deploy_watch: DeployWatch
    max_error_rate: MaxErrorRate
    max_latency_ratio: MaxLatencyRatio
    min_requests: MinRequests
    telemetry_interval: TelemetryInterval
    log_level: LogLevel


class SettingsChange(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The settings a set-config command changes: any of them, at least one; the device takes all or none."""

    deploy_watch: DeployWatch | UnsetType = UNSET
    max_error_rate: MaxErrorRate | UnsetType = UNSET
    max_latency_ratio: MaxLatencyRatio | UnsetType = UNSET
    min_requests: MinRequests | UnsetType = UNSET
    telemetry_interval: TelemetryInterval | UnsetType = UNSET
    log_level: SettableLogLevel | UnsetType = UNSET

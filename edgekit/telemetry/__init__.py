"""The host side of telemetry: parse what devices send, store it, and collect it from an MQTT broker.

- :mod:`edgekit.telemetry.messages`: one MQTT message (a window, a batch, a state or a command event) into rows
  to store, or a :class:`~edgekit.errors.TelemetryError` saying what is wrong with it.
- :mod:`edgekit.telemetry.store`: the :class:`~edgekit.telemetry.store.Store` protocol, SQLite and PostgreSQL
  stores chosen by URL (:func:`~edgekit.telemetry.store.open_store`), idempotent on ``(fleet, device, seq)``
  (windows) and ``(fleet, device, id, status)`` (events).
- :mod:`edgekit.telemetry.collector`: the :class:`~edgekit.telemetry.collector.Collector`, which subscribes
  with a persistent MQTT 5 session and acknowledges each message only once it is committed (its connection is the
  runtime's one MQTT layer, :mod:`edgekit_runtime.mqtt`).
- :mod:`edgekit.telemetry.queries`: what the fleet dashboard reads (a device's windows over time, the latest
  step of each command from the devices' events).
- :mod:`edgekit.telemetry.latency`: the recent p99 ``show``, ``fleet devices`` and the dashboard print: the
  windows' latency histograms merged, interpolated within the bucket.

The message format is in ``docs/telemetry.md``. Nothing here imports onnxruntime or torch.
"""

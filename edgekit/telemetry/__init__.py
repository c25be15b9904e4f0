"""The host side of telemetry: parse what devices send, store it, and collect it from an MQTT broker.

- :mod:`edgekit.telemetry.messages`: one MQTT message (topic and payload) into rows to store, or a
  :class:`~edgekit.errors.TelemetryError` saying what is wrong with it.
- :mod:`edgekit.telemetry.store`: the :class:`~edgekit.telemetry.store.Store` protocol, SQLite and PostgreSQL
  stores chosen by URL (:func:`~edgekit.telemetry.store.open_store`), idempotent on ``(fleet, device, seq)``.
- :mod:`edgekit.telemetry.collector`: the :class:`~edgekit.telemetry.collector.Collector`, which subscribes
  with a persistent MQTT 5 session and acknowledges each message only once it is committed;
  :mod:`edgekit.telemetry.mqtt_session` holds its paho-mqtt client and callbacks.

The message format is in ``docs/telemetry.md``. Nothing here imports onnxruntime or torch.
"""

"""Telemetry on the device: windows of numbers, kept on disk until the broker has them (issue 6).

:mod:`.outbox` is the durable store-and-forward queue; the recorder and the MQTT publisher build on it.
"""

"""The one MQTT connection layer of edgekit.

The device (telemetry publisher, fleet agent) and the host (collector, operator) connect through it alone:

- :mod:`~edgekit_runtime.mqtt.settings`: where the broker is and how to log in (:class:`MqttSettings`), checked
  when made, errors naming the option to fix;
- :mod:`~edgekit_runtime.mqtt.connection`: the seam, :class:`Connection`, with the values that cross it (messages,
  deliveries and their PUBACKs, events) and :func:`publish_and_wait`;
- :mod:`~edgekit_runtime.mqtt.paho_connection`: the one adapter to paho-mqtt 2, its callbacks kept inside;
- :mod:`~edgekit_runtime.mqtt.backoff`: the one reconnect backoff, exponential with full jitter;
- :mod:`~edgekit_runtime.mqtt.testing`: an in-memory broker and connections for unit tests.

Nothing here is imported by this ``__init__``: paho-mqtt loads only where a connection is made.
"""

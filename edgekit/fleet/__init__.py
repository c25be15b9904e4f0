"""Fleet tools on the host: what the operator sees of the devices and does to them.

- :mod:`edgekit.fleet.dashboard`: ``edgekit fleet dashboard``, one web page and a small JSON API over the
  telemetry store (devices, their latency and throughput over time, drift flags, rollout progress).
- :mod:`edgekit.fleet.rollout`: ``edgekit fleet deploy`` (canary first, then the rest; abort and roll back) and
  ``rollback``, over :mod:`edgekit.fleet.link` (the MQTT connection); the plain-value rules (canary share,
  ``--abort-if``, targets) are in :mod:`edgekit.fleet.rules`, the bundle's check and HTTP server in
  :mod:`edgekit.fleet.bundle_source`.
"""

"""Fleet tools on the host: what the operator sees of the devices and does to them.

- :mod:`edgekit.fleet.dashboard`: ``edgekit fleet dashboard``, one web page and a small JSON API over the
  telemetry store (devices, their latency and throughput over time, drift flags, rollout progress).
"""

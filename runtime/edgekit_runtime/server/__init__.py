"""The runtime's HTTP server: a plain ASGI application run by uvicorn, one verified model per server.

It speaks Open Inference Protocol v2, the seed's ``/predict``, MLflow's ``/invocations`` and Prometheus
``/metrics``. Modules, outside in: :mod:`.serve` (socket, uvicorn, signals), :mod:`.connections` (idle and
head timeouts, the connection cap), :mod:`.app` (routes, errors, metrics per request), :mod:`.budget` (the
memory that request bodies may take), :mod:`.asgi` (body limits, responses), one module per protocol
(:mod:`.oip` with :mod:`.oip_tensors`, :mod:`.simple`, :mod:`.mlflow`; :mod:`.json_arrays` turns their JSON
into arrays), :mod:`.inference` (model calls off the event loop), :mod:`.batching` (optional micro-batching),
:mod:`.metrics` (the exposition format) and :mod:`.settings`.

Nothing is imported here, so that the command line can read :mod:`.settings` without loading uvicorn.
"""

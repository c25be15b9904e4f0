"""The ASGI application: one model, four protocols, one route table, and every failure answered.

Each route belongs to a protocol, which names its metrics series and gives its error form. Whatever a
request does wrong ends as a 4xx in that form: :class:`HttpError` for HTTP-level problems (size, JSON,
content type, path, method), :class:`InvalidInputError` (400) for inputs that do not fit the model. A
backend that fails on checked inputs is a 500 with its message, and anything unforeseen is a 500 too,
logged with its traceback on the server side; neither stops the server.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit_runtime.errors import InvalidInputError, RuntimeKitError
from edgekit_runtime.server import mlflow, oip, simple
from edgekit_runtime.server.asgi import ClientGone, HttpError, Request, Response, read_body, send_response
from edgekit_runtime.server.batching import MicroBatcher
from edgekit_runtime.server.inference import Inference
from edgekit_runtime.server.metrics import CONTENT_TYPE, ServerMetrics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from edgekit_runtime.model import Model
    from edgekit_runtime.server.asgi import Receive, Scope, Send
    from edgekit_runtime.server.inference import Infer
    from edgekit_runtime.server.settings import ServerSettings

    Handler = Callable[[Request], Awaitable[Response]]

logger = logging.getLogger("edgekit_runtime.server")

ERRORS: dict[str, Callable[[int, str], Response]] = {
    "oip": oip.error_response,
    "predict": simple.error_response,
    "mlflow": mlflow.error_response,
    "metrics": simple.error_response,
    "other": simple.error_response,
}
ENDPOINTS = "/v2 (Open Inference Protocol), /predict, /invocations, /ping, /health, /metrics"
MODELS = "/v2/models/"
#: the status recorded for a client that hangs up before its answer (nginx's convention)
CLIENT_GONE = 499


@dataclass(frozen=True)
class Route:
    """A path's protocol and its handlers by method."""

    protocol: str
    handlers: Mapping[str, Handler]


class App:
    """The server's ASGI 3 application."""

    def __init__(self, model: Model, infer: Infer, settings: ServerSettings, metrics: ServerMetrics) -> None:
        """Build the route table for ``model``; requests are run through ``infer``."""
        self.model = model
        self.infer = infer
        self.metrics = metrics
        self.max_body_bytes = settings.max_body_bytes
        self.body_timeout = settings.body_timeout
        v2 = oip.OpenInference(model, infer)
        seed = simple.SimpleForm(model, infer)
        scoring = mlflow.MlflowScoring(model, infer)
        self._paths = {
            "/v2": Route("oip", {"GET": v2.server_metadata}),
            "/v2/health/live": Route("oip", {"GET": v2.live}),
            "/v2/health/ready": Route("oip", {"GET": v2.ready}),
            "/predict": Route("predict", {"POST": seed.predict}),
            "/invocations": Route("mlflow", {"POST": scoring.invocations}),
            "/ping": Route("mlflow", {"GET": scoring.ping}),
            "/health": Route("mlflow", {"GET": scoring.ping}),
            "/metrics": Route("metrics", {"GET": self.render_metrics}),
        }
        #: what follows /v2/models/NAME[/versions/VERSION]
        self._model_paths = {
            (): Route("oip", {"GET": v2.model_metadata}),
            ("ready",): Route("oip", {"GET": v2.model_ready}),
            ("infer",): Route("oip", {"POST": v2.model_infer}),
        }

    def route(self, path: str) -> tuple[Route, tuple[str, ...]] | None:
        """The route for ``path`` and what it takes from the path, or ``None``."""
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        found = self._paths.get(path)
        if found is not None:
            return found, ()
        if not path.startswith(MODELS):
            return None
        parts = path[len(MODELS) :].split("/")
        name, rest, version = parts[0], parts[1:], ""
        if len(rest) >= 2 and rest[0] == "versions":  # noqa: PLR2004
            version, rest = rest[1], rest[2:]
            if not version:
                return None
        found = self._model_paths.get(tuple(rest))
        return None if found is None or not name else (found, (name, version))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (or the lifespan protocol, for servers that speak it)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        self.metrics.inflight.add(1)
        found = self.route(scope["path"])
        protocol = "other" if found is None else found[0].protocol
        status = CLIENT_GONE
        try:
            response = await self._respond(scope, receive, found)
            await send_response(send, response)
            status = response.status
        except ClientGone:
            pass
        finally:
            self.metrics.inflight.add(-1)
            self.metrics.requests.inc((protocol, str(status)))
            self.metrics.request_seconds.observe(time.perf_counter() - start, (protocol,))

    async def _respond(self, scope: Scope, receive: Receive, found: tuple[Route, tuple[str, ...]] | None) -> Response:
        errors = ERRORS["other" if found is None else found[0].protocol]
        try:
            return await self._handle(scope, receive, found)
        except ClientGone:
            raise
        except HttpError as exc:
            response = errors(exc.status, exc.message)
            response.headers += exc.headers
            return response
        except InvalidInputError as exc:
            return errors(400, str(exc))
        except RuntimeKitError as exc:
            logger.warning("%s %s failed: %s", scope["method"], scope["path"], exc)
            return errors(500, str(exc))
        except Exception as exc:
            logger.exception("%s %s failed unexpectedly", scope["method"], scope["path"])
            return errors(500, f"internal error ({type(exc).__name__}): the server's log has the details")

    async def _handle(self, scope: Scope, receive: Receive, found: tuple[Route, tuple[str, ...]] | None) -> Response:
        method, path = scope["method"], scope["path"]
        if found is None:
            raise HttpError(404, f"nothing at {path[:200]}: this server answers {ENDPOINTS}")
        route, params = found
        handler = route.handlers.get(method)
        if handler is None:
            allowed = ", ".join(route.handlers)
            raise HttpError(
                405, f"{method} is not allowed on {path[:200]}: use {allowed}", headers=((b"allow", allowed.encode()),)
            )
        headers = dict(scope["headers"])
        if method == "POST":
            body = await read_body(headers, receive, self.max_body_bytes, stall_timeout=self.body_timeout)
        else:
            body = b""
        return await handler(Request(method, path, headers, body, params))

    async def render_metrics(self, request: Request) -> Response:  # noqa: ARG002
        """``GET /metrics``."""
        return Response(200, self.metrics.render(), CONTENT_TYPE)

    def close(self) -> None:
        """Let go of the inference threads once the calls running now are done."""
        self.infer.close()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(model: Model, settings: ServerSettings) -> App:
    """The application for ``model``: its metrics, its inference pool, and a micro-batcher if asked for."""
    settings.check_model(model)
    metrics = ServerMetrics(
        name=model.name,
        version=model.version,
        sha256=model.sha256,
        backend=model.backend.name,
        load_seconds=model.load_seconds,
    )
    infer: Infer = Inference(model.run, concurrency=settings.concurrency, metrics=metrics)
    if settings.max_batch is not None:
        infer = MicroBatcher(
            infer, max_batch=settings.max_batch, max_delay=settings.max_delay_ms / 1000, slots=settings.concurrency
        )
    return App(model, infer, settings, metrics)

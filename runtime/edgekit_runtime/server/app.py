"""The ASGI application: one model, four protocols, one route table, and every failure answered.

Each route belongs to a protocol (:mod:`.routes`), which names its metrics series and gives its error form. Whatever a
request does wrong ends as a 4xx in that form: :class:`HttpError` for HTTP-level problems (size, JSON,
content type, path, method), :class:`InvalidInputError` (400) for inputs that do not fit the model. A
request with a body first takes its share of the memory budget (:mod:`.budget`): one that cannot have it
in time is a 503, the only 5xx a client can cause. A backend that fails on checked inputs is a 500 with its
message, and anything unforeseen is a 500 too, logged with its traceback on the server side; neither stops
the server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from edgekit_runtime.errors import ConfigError, EdgekitError, HttpError, InvalidInputError
from edgekit_runtime.server import oip
from edgekit_runtime.server.asgi import (
    ClientGone,
    Request,
    Response,
    ascii_int,
    declared_length,
    read_body,
    send_response,
)
from edgekit_runtime.server.batching import MicroBatcher
from edgekit_runtime.server.budget import MemoryBudget, upfront_cost
from edgekit_runtime.server.inference import Inference
from edgekit_runtime.server.metrics import CONTENT_TYPE, ServerMetrics, telemetry_metrics
from edgekit_runtime.server.routes import ENDPOINTS, ERRORS, Route, Routes
from edgekit_runtime.server.telemetry_hook import CLIENT_GONE, Observed, record, watch

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from edgekit_runtime.model import Model
    from edgekit_runtime.server.asgi import Receive, Scope, Send
    from edgekit_runtime.server.inference import Infer
    from edgekit_runtime.server.settings import ServerSettings
    from edgekit_runtime.server.telemetry_hook import Recorder

logger = logging.getLogger("edgekit_runtime.server")
T = TypeVar("T")

#: a request the memory budget turned away: load shed, not a failure of the model (counted in neither count)
SHED = 503


@dataclass
class _Serving:
    """One model's route table and inference; a request keeps the one it started with to its end."""

    model: Model
    infer: Infer
    routes: Routes
    inflight: int = 0
    retired: bool = False
    #: this model's inference requests, those answered 5xx, and their seconds (a deploy's health)
    counts: list[float] = field(default_factory=lambda: [0, 0, 0.0])
    #: this model's inference requests answered 4xx (a client that hung up, 499, is not an answer)
    client_errors: int = 0


class App:
    """The server's ASGI 3 application.

    :meth:`swap` replaces the model while serving: new requests go to the new model at once; requests that
    started before finish on the old one, whose inference threads are let go once the last of them is done.
    Nothing is refused or dropped in between.
    """

    def __init__(
        self,
        model: Model,
        infer: Infer,
        settings: ServerSettings,
        metrics: ServerMetrics,
        telemetry: Recorder | None = None,
    ) -> None:
        """Build the route table for ``model``; requests are run through ``infer``, and told to ``telemetry``."""
        self.settings = settings
        self.telemetry = telemetry
        self.metrics = metrics
        self.max_body_bytes = settings.max_body_bytes
        self.body_timeout = settings.body_timeout
        self.budget = MemoryBudget(settings.memory_budget, settings.memory_wait, metrics.memory_reserved)
        self.loop: asyncio.AbstractEventLoop | None = None
        #: ``/metrics`` from elsewhere (all the workers of ``serve --workers``), run on a thread; ``None``: this app's
        self.metrics_text: Callable[[], bytes] | None = None
        self._serving = self._build(model, infer)

    @property
    def model(self) -> Model:
        """The model new requests go to."""
        return self._serving.model

    @property
    def inference_counts(self) -> tuple[int, int, float]:
        """The serving model's inference requests, those answered 5xx, and their seconds, since it was switched in.

        A request counts for the model it started on, so requests in flight at a switch do not count for the
        next model: a deploy's health watch judges the new model by its own requests alone. A 503 from the
        memory budget is the server shedding load, not the model failing, so it is not an error here: any
        client could otherwise send large bodies until a deploy rolled back.
        """
        requests, errors, seconds = self._serving.counts
        return int(requests), int(errors), float(seconds)

    @property
    def client_error_count(self) -> int:
        """The serving model's inference requests answered 4xx since it was switched in.

        They are counted as :attr:`inference_counts` counts: a request counts for the model it started on. A 4xx
        is the client's mistake (a wrong shape, a body over the limit), so a deploy's health watch may want them
        apart from the 5xx in :attr:`inference_counts`: a model whose input schema changed shows up here. A
        client that hung up (499) is not counted.
        """
        return self._serving.client_errors

    def health(self) -> tuple[int, int, float, int]:
        """:attr:`inference_counts` and :attr:`client_error_count`: what a deploy's health watch reads."""
        return (*self.inference_counts, self.client_error_count)

    @property
    def infer(self) -> Infer:
        """The inference new requests go to."""
        return self._serving.infer

    def _build(self, model: Model, infer: Infer) -> _Serving:
        if self.telemetry is not None:
            infer = Observed(infer)
        return _Serving(model, infer, Routes.for_model(model, infer, self.render_metrics))

    def swap(self, model: Model) -> None:
        """Serve ``model`` from the next request on.

        Call it on the event loop (:meth:`swap_from_thread` from elsewhere). Raises :class:`ConfigError` for a
        model these settings cannot serve, changing nothing.
        """
        self.settings.check_model(model)
        old = self._serving
        self._serving = self._build(model, make_infer(model, self.settings, self.metrics))
        self.metrics.set_model(model)
        old.retired = True
        if not old.inflight:
            _let_go(old)

    def swap_from_thread(self, model: Model, timeout: float = 30.0) -> None:
        """:meth:`swap`, from a thread other than the event loop's (the fleet agent's)."""
        self.from_thread(lambda: self.swap(model), timeout)

    def from_thread(self, call: Callable[[], T], timeout: float = 10.0) -> T:
        """``call()`` run on the event loop, from another thread (the fleet agent's, a worker channel's)."""
        loop = self.loop
        if loop is None:
            raise ConfigError("the server is not running yet: start it before calling it from another thread")

        async def on_loop() -> T:
            return call()

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout)

    def route(self, path: str, serving: _Serving | None = None) -> tuple[Route, tuple[str, ...]] | None:
        """The route for ``path`` and what it takes from the path, or ``None``."""
        return (serving or self._serving).routes.find(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (or the lifespan protocol, for servers that speak it)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        self.metrics.inflight.add(1)
        serving = self._serving
        serving.inflight += 1
        found = self.route(scope["path"], serving)
        protocol = "other" if found is None else found[0].protocol
        status = CLIENT_GONE
        seen = None
        if self.telemetry is not None and found is not None and found[0].inference:
            seen = watch()
        try:
            response = await self._respond(scope, receive, found)
            await send_response(send, response)
            status = response.status
        except ClientGone:
            pass
        finally:
            seconds = time.perf_counter() - start
            self.metrics.inflight.add(-1)
            serving.inflight -= 1
            if serving.retired and not serving.inflight:
                _let_go(serving)
            if found is not None and found[0].inference:
                counts = serving.counts
                counts[0] += 1
                counts[1] += status >= 500 and status != SHED  # noqa: PLR2004
                counts[2] += seconds
                if 400 <= status < CLIENT_GONE:  # noqa: PLR2004
                    serving.client_errors += 1
            self.metrics.requests.inc((protocol, str(status)))
            self.metrics.request_seconds.observe(seconds, (protocol,))
            if seen is not None and self.telemetry is not None:
                record(self.telemetry, seconds, status, seen)

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
        except EdgekitError as exc:
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
        if method != "POST":
            return await handler(Request(method, path, headers, b"", params))
        memory = await self.budget.reserve(self._upfront(headers, route))
        try:
            body = await read_body(headers, receive, self.max_body_bytes, stall_timeout=self.body_timeout)
            request = Request(method, path, headers, body, params, memory)
            del body  # the request holds it, and lets it go once the inputs are checked
            return await handler(request)
        finally:
            memory.release()

    def _upfront(self, headers: Mapping[bytes, bytes], route: Route) -> int:
        """What a body reserves of the memory budget before it is read: what its headers say it may need."""
        size = declared_length(headers, self.max_body_bytes)
        encoding = headers.get(b"content-encoding", b"").strip().lower()
        if size is None or encoding not in {b"", b"identity"}:  # chunked, or compressed: up to the limit
            size = self.max_body_bytes
        json_bytes = None
        if route.protocol == "oip" and (raw := headers.get(oip.HEADER_LENGTH)) is not None:
            json_bytes = ascii_int(raw)
        return upfront_cost(size, json_bytes)

    async def render_metrics(self, request: Request) -> Response:  # noqa: ARG002
        """``GET /metrics``."""
        if self.metrics_text is not None:
            body = await asyncio.get_running_loop().run_in_executor(None, self.metrics_text)
            return Response(200, body, CONTENT_TYPE)
        body = self.metrics.render()
        if self.telemetry is not None:
            body += telemetry_metrics(self.telemetry.status())
        return Response(200, body, CONTENT_TYPE)

    def close(self) -> None:
        """Let go of the inference threads once the calls running now are done."""
        self._serving.infer.close()


def _let_go(serving: _Serving) -> None:
    """Close a retired model's inference threads, off the event loop (closing waits for running calls)."""
    threading.Thread(target=serving.infer.close, name="edgekit-retire", daemon=True).start()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_infer(model: Model, settings: ServerSettings, metrics: ServerMetrics) -> Infer:
    """The inference pool for ``model``, behind a micro-batcher if the settings ask for one."""
    inline = settings.inline_below_ms / 1000 if settings.max_batch is None else 0.0  # batches form in the pool
    infer: Infer = Inference(model.run, concurrency=settings.concurrency, metrics=metrics, inline_below=inline)
    if settings.max_batch is not None:
        infer = MicroBatcher(
            infer, max_batch=settings.max_batch, max_delay=settings.max_delay_ms / 1000, slots=settings.concurrency
        )
    return infer


def create_app(model: Model, settings: ServerSettings, telemetry: Recorder | None = None) -> App:
    """The application for ``model``: metrics, inference pool, micro-batcher if asked for, and telemetry."""
    settings.check_model(model)
    metrics = ServerMetrics(
        name=model.name,
        version=model.version,
        sha256=model.sha256,
        backend=model.backend.name,
        load_seconds=model.load_seconds,
    )
    return App(model, make_infer(model, settings, metrics), settings, metrics, telemetry)

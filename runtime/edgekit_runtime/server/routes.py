"""The server's route table: which path and method reach which protocol's handler.

Each route belongs to a protocol, which names its metrics series and gives its error form (:data:`ERRORS`).
Paths match exactly, a trailing slash forgiven; the Open Inference Protocol's model paths
(``/v2/models/NAME[/versions/VERSION]/...``) hand the name and version they carry to the handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekit_runtime.server import mlflow, oip, simple

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from edgekit_runtime.model import Model
    from edgekit_runtime.server.asgi import Request, Response
    from edgekit_runtime.server.inference import Infer

    Handler = Callable[[Request], Awaitable[Response]]

ERRORS: dict[str, Callable[[int, str], Response]] = {
    "oip": oip.error_response,
    "predict": simple.error_response,
    "mlflow": mlflow.error_response,
    "metrics": simple.error_response,
    "other": simple.error_response,
}
ENDPOINTS = "/v2 (Open Inference Protocol), /predict, /invocations, /ping, /health, /metrics"
MODELS = "/v2/models/"


@dataclass(frozen=True)
class Route:
    """A path's protocol and its handlers by method; ``inference`` routes are what telemetry counts."""

    protocol: str
    handlers: Mapping[str, Handler]
    inference: bool = False


@dataclass(frozen=True)
class Routes:
    """One model's route table."""

    paths: Mapping[str, Route]
    #: what follows /v2/models/NAME[/versions/VERSION]
    model_paths: Mapping[tuple[str, ...], Route]

    @classmethod
    def for_model(cls, model: Model, infer: Infer, metrics: Handler) -> Routes:
        """The four protocols' routes for ``model``, run through ``infer``; ``GET /metrics`` is ``metrics``."""
        v2 = oip.OpenInference(model, infer)
        seed = simple.SimpleForm(model, infer)
        scoring = mlflow.MlflowScoring(model, infer)
        paths = {
            "/v2": Route("oip", {"GET": v2.server_metadata}),
            "/v2/health/live": Route("oip", {"GET": v2.live}),
            "/v2/health/ready": Route("oip", {"GET": v2.ready}),
            "/predict": Route("predict", {"POST": seed.predict}, inference=True),
            "/invocations": Route("mlflow", {"POST": scoring.invocations}, inference=True),
            "/ping": Route("mlflow", {"GET": scoring.ping}),
            "/health": Route("mlflow", {"GET": scoring.ping}),
            "/metrics": Route("metrics", {"GET": metrics}),
        }
        model_paths = {
            (): Route("oip", {"GET": v2.model_metadata}),
            ("ready",): Route("oip", {"GET": v2.model_ready}),
            ("infer",): Route("oip", {"POST": v2.model_infer}, inference=True),
        }
        return cls(paths, model_paths)

    def find(self, path: str) -> tuple[Route, tuple[str, ...]] | None:
        """The route for ``path`` and what it takes from the path, or ``None``."""
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        found = self.paths.get(path)
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
        found = self.model_paths.get(tuple(rest))
        return None if found is None or not name else (found, (name, version))

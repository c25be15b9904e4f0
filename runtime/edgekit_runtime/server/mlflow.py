"""MLflow's scoring protocol (``mlflow models serve``): ``POST /invocations``, ``GET /ping``, ``GET /health``.

``/invocations`` takes a JSON object with exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (``params`` and other keys are ignored, as MLflow does). Table columns map to
the model's features by the names a bundle records (``inputs[0].features``, from a model fitted on a
DataFrame), else by position; columns named after the model's inputs feed those inputs. The answer is
``{"predictions": ...}``: a classifier's labels, a one-output model's output, else a dict of outputs.
Errors take MLflow's form, ``{"error_code": "BAD_REQUEST", "message": "..."}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from edgekit_runtime.errors import HttpError
from edgekit_runtime.server.asgi import Response, json_response, require_json
from edgekit_runtime.server.json_arrays import json_array
from edgekit_runtime.server.simple import is_classifier, jsonable

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from edgekit_runtime.model import Model
    from edgekit_runtime.server.asgi import Request
    from edgekit_runtime.server.inference import Infer

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
#: MLflow's error codes for the statuses this server answers (``mlflow.exceptions``)
_CODES = {404: "ENDPOINT_NOT_FOUND", 503: "TEMPORARILY_UNAVAILABLE"}


def error_response(status: int, message: str) -> Response:
    """MLflow's error object."""
    code = _CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")  # noqa: PLR2004
    return Response(status, orjson.dumps({"error_code": code, "message": message}))


class MlflowScoring:
    """The scoring endpoints for one model."""

    def __init__(self, model: Model, infer: Infer) -> None:
        """Note the model's inputs, feature names and outputs."""
        self.model = model
        self.infer = infer
        self._names = [s.name for s in model.inputs]
        self._dtypes = {s.name: s.dtype for s in model.inputs}
        features = ((model.manifest or {}).get("inputs") or [{}])[0].get("features")
        self._features: list[str] | None = list(features) if len(self._names) == 1 and features else None
        self._classifier = is_classifier(model)

    async def ping(self, request: Request) -> Response:  # noqa: ARG002
        """``GET /ping`` and ``GET /health``: a newline, as MLflow answers."""
        return Response(200, b"\n")

    async def invocations(self, request: Request) -> Response:
        """``POST /invocations``."""
        require_json(request)
        doc = request.json()
        found = [k for k in FORMATS if k in doc] if isinstance(doc, dict) else []
        if len(found) != 1:
            got = f"keys {sorted(doc)[:8]}" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
            raise HttpError(
                400, f"the input must be a JSON object with exactly one of the fields {', '.join(FORMATS)}; got {got}"
            )
        key = found[0]
        values = self._feeds(key, doc[key])
        feeds = self.model.check({n: json_array(v, str(n), self._dtypes.get(n)) for n, v in values.items()})
        del values, doc  # the JSON can go while the model runs
        request.settle(feeds)
        outputs = await self.infer(feeds)
        return json_response({"predictions": self.predictions(outputs)})

    def predictions(self, outputs: Mapping[str, np.ndarray]) -> Any:  # noqa: ANN401
        """A classifier's labels, the only output, or every output by name."""
        if self._classifier:
            return jsonable(outputs["label"])
        if len(outputs) == 1:
            return jsonable(next(iter(outputs.values())))
        return {name: jsonable(array) for name, array in outputs.items()}

    def _feeds(self, key: str, value: Any) -> dict[str, Any]:  # noqa: ANN401
        if key == "inputs":
            return dict(value) if isinstance(value, dict) else self._one_input(value, key)
        if key == "instances":
            if not isinstance(value, list):
                raise HttpError(400, "'instances' must be a list, one entry per sample")
            if value and all(isinstance(v, dict) for v in value):
                return {name: [v[name] for v in value] for name in _keys(value, "instances")}
            return self._one_input(value, key)
        if key == "dataframe_split":
            if not isinstance(value, dict) or not isinstance(value.get("data"), list):
                raise HttpError(400, "'dataframe_split' must be an object with 'data' (rows) and 'columns'")
            columns = value.get("columns")
            if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
                raise HttpError(400, "'dataframe_split.columns' must be a list of column names")
            return self._table(columns, value["data"])
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise HttpError(400, "'dataframe_records' must be a list of {column: value} objects, one per row")
        columns = _keys(value, "dataframe_records")
        return self._table(columns, [[record[c] for c in columns] for record in value])

    def _one_input(self, value: Any, key: str) -> dict[str, Any]:  # noqa: ANN401
        if len(self._names) != 1:
            names = ", ".join(self._names)
            raise HttpError(400, f"the model takes {len(self._names)} inputs ({names}): send '{key}' by input name")
        return {self._names[0]: value}

    def _table(self, columns: list[str] | None, rows: Any) -> dict[str, Any]:  # noqa: ANN401
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise HttpError(400, "dataframe 'data' must be a list of rows, each a list of values")
        if columns is not None:
            for number, row in enumerate(rows):
                if len(row) != len(columns):
                    raise HttpError(400, f"row {number} has {len(row)} values for {len(columns)} columns")
            if set(columns) == set(self._names) and len(columns) == len(self._names):
                return {name: [row[columns.index(name)] for row in rows] for name in self._names}
            if self._features is not None:
                return {self._names[0]: self._by_feature(columns, rows)}
        return self._one_input(rows, "dataframe")

    def _by_feature(self, columns: list[str], rows: list[list[Any]]) -> Any:  # noqa: ANN401
        features = self._features or []
        missing = [f for f in features if f not in columns]
        unknown = [c for c in columns if c not in features]
        if missing or unknown:
            parts = ([f"missing {', '.join(missing[:8])}"] if missing else []) + (
                [f"unknown {', '.join(unknown[:8])}"] if unknown else []
            )
            raise HttpError(
                400, f"columns do not match the model's features ({'; '.join(parts)}): it takes {', '.join(features)}"
            )
        order = [columns.index(f) for f in features]
        return [[row[i] for i in order] for row in rows]


def _keys(records: list[dict[str, Any]], what: str) -> list[str]:
    keys = list(records[0]) if records else []
    for number, record in enumerate(records):
        if record.keys() != set(keys):
            raise HttpError(400, f"{what}[{number}] has keys {sorted(record)[:8]}, not {keys[:8]}: use the same keys")
    return keys

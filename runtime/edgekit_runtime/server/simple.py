"""``POST /predict``: the seed's form, ``{"features": [[...], ...]}`` in, ``{"prediction": [...]}`` out.

For models with one input. A single sample without its batch axis (one flat row for a table model) is
taken as a batch of one. A classifier (outputs ``label`` and ``probabilities``, as edgekit's scikit-learn
importer writes them) answers its labels as scikit-learn's ``predict`` gives them, plus
``"probabilities"``; any other model answers its first output. Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from edgekit_runtime.errors import HttpError
from edgekit_runtime.server.asgi import Response, json_response, require_json
from edgekit_runtime.server.json_arrays import json_array

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgekit_runtime.model import Model
    from edgekit_runtime.server.asgi import Request
    from edgekit_runtime.server.inference import Infer
    from edgekit_runtime.specs import TensorSpec

CLASSIFIER_OUTPUTS = ("label", "probabilities")


def error_response(status: int, message: str) -> Response:
    """The seed's error object."""
    return Response(status, orjson.dumps({"error": message}))


def is_classifier(model: Model) -> bool:
    """Whether the model gives ``label`` and ``probabilities``, as a bundled scikit-learn classifier does."""
    names = {s.name for s in model.outputs}
    return all(n in names for n in CLASSIFIER_OUTPUTS)


def jsonable(array: np.ndarray) -> Any:  # noqa: ANN401
    """An output as orjson serialises it fastest: the array itself for numbers, lists for text."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return array.tolist()


def as_batch(value: Any, spec: TensorSpec) -> np.ndarray:  # noqa: ANN401
    """``value`` as an array, given its batch axis when it is one sample without it."""
    array = json_array(value, spec.name, spec.dtype)
    if spec.batched and spec.shape is not None and array.ndim == len(spec.shape) - 1:
        return array[np.newaxis]
    return array


class SimpleForm:
    """``/predict`` for one model."""

    def __init__(self, model: Model, infer: Infer) -> None:
        """Note the model's input and whether it is a classifier."""
        self.model = model
        self.infer = infer
        self._input = model.inputs[0] if len(model.inputs) == 1 else None
        self._classifier = is_classifier(model)
        self._first = model.outputs[0].name

    async def predict(self, request: Request) -> Response:
        """``POST /predict``."""
        require_json(request)
        doc = request.json()
        if not isinstance(doc, dict) or "features" not in doc:
            raise HttpError(400, 'body must be a JSON object {"features": [[...], ...]}, one row per sample')
        if self._input is None:
            names = ", ".join(f"'{s.name}'" for s in self.model.inputs)
            raise HttpError(
                400, f"/predict serves one-input models and this one takes {names}: use POST /v2/models/NAME/infer"
            )
        feeds = self.model.check({self._input.name: as_batch(doc["features"], self._input)})
        del doc  # the JSON can go while the model runs
        request.settle(feeds)
        outputs = await self.infer(feeds)
        return json_response(self.answer(outputs))

    def answer(self, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """``{"prediction": ...}``, with ``"probabilities"`` for a classifier."""
        if self._classifier:
            return {
                "prediction": jsonable(outputs["label"]),
                "probabilities": jsonable(outputs["probabilities"]),
            }
        return {"prediction": jsonable(outputs[self._first])}

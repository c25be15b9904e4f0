"""The servers ``tools/bench_serve.py`` compares, and the one model they all serve.

One fit, every form: a scikit-learn ``MLPClassifier(hidden_layer_sizes=(64,))`` on ``load_digits``
(64 pixel values 0..16, seed 0) is pickled for the seed's Flask app and saved as an MLflow model
(``mlflow.sklearn.save_model``, pickle format) for ``mlflow models serve``; ``edgekit bundle pack
model.pkl`` makes the runtime's ``.edgebundle``, and the ONNX file inside that bundle is what the
minimal uvicorn app and the in-process ``session.run`` load, so every server computes the same function.

The servers, each started as its users start it:

* ``edgekit-runtime``: ``edgekit-runtime serve BUNDLE --host --port --threads``;
* ``flask-seed``: the seed's app, word for word (pickle + ``model.predict``, ``app.run``: Flask's
  threaded development server);
* ``mlflow-1w``, ``mlflow-2w``: ``mlflow models serve -m FOLDER --env-manager local -w 1|2``
  (uvicorn + FastAPI in MLflow 3), asked in MLflow's ``{"inputs": [[...]]}`` form;
* ``uvicorn-minimal``: a hand-written Starlette app on uvicorn (uvloop, httptools, no access log)
  around one ``InferenceSession``: the lower bound of what serving costs in Python;
* with two worker processes each: ``edgekit-runtime serve --workers 2``, the seed's app under ``gunicorn -w 2``
  (sync workers, as its docs start it), and the minimal app under ``uvicorn --workers 2``;
* the HTTP engine alone (issue 22): the minimal app under ``granian --interface asgi`` (Rust's hyper and
  tokio) instead of uvicorn, and the runtime's own ASGI app (``create_app``, no telemetry, no connection
  limits: those are uvicorn's) under granian (``GRANIAN_APP``).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

BIN = Path(sys.executable).parent
SEED = 0
HIDDEN = (64,)
#: the order servers run in, each round
KEYS = (
    "edgekit-runtime",
    "flask-seed",
    "mlflow-1w",
    "mlflow-2w",
    "uvicorn-minimal",
    "edgekit-runtime-2w",
    "flask-gunicorn-2w",
    "uvicorn-minimal-2w",
    "granian-minimal",
    "edgekit-app-granian",
)
#: the servers of more than one process: they get every server CPU (``--server-cpus-2w``)
MULTI = ("mlflow-2w", "edgekit-runtime-2w", "flask-gunicorn-2w", "uvicorn-minimal-2w")

FLASK_APP = """\
import pickle

import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
model = pickle.load(open("model.pkl", "rb"))


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json()
    prediction = model.predict(np.array(data["features"]))
    return jsonify({{"prediction": prediction.tolist()}})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port={port})
"""

MINIMAL_APP = """\
import os

import numpy as np
import onnxruntime as ort
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("THREADS", "1"))
session = ort.InferenceSession("model.onnx", options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name


async def predict(request):
    data = await request.json()
    label, _ = session.run(None, {input_name: np.asarray(data["features"], dtype=np.float32)})
    return JSONResponse({"prediction": label.tolist()})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
"""


#: the runtime's own app for granian: the bundle and threads from the environment
GRANIAN_APP = """\
import os

from edgekit_runtime import LoadOptions, load
from edgekit_runtime.backends import BackendSettings
from edgekit_runtime.server.app import create_app
from edgekit_runtime.server.settings import ServerSettings

threads = int(os.environ.get("THREADS", "1"))
model = load(os.environ["BUNDLE"], LoadOptions(backend=BackendSettings(threads=threads)))
app = create_app(model, ServerSettings(port=0, concurrency=1))
"""


@dataclass(frozen=True)
class DigitsModel:
    """The fitted model in every form the servers load, and the samples requests carry."""

    folder: Path
    pickle: Path
    mlflow: Path
    bundle: Path
    onnx: Path
    #: request samples (test rows of load_digits, float64 pixel values) and scikit-learn's labels for them
    samples: np.ndarray
    labels: np.ndarray
    train_accuracy: float
    notes: list[str] = field(default_factory=list)


def prepare_model(folder: Path) -> DigitsModel:
    """Fit, pickle, save for MLflow, bundle; everything under ``folder``."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from edgekit_runtime.bundle import open_bundle

    x, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=1000, random_state=SEED).fit(x, y)
    pkl = folder / "model.pkl"
    pkl.write_bytes(pickle.dumps(clf))
    mlflow_dir = folder / "mlflow-model"
    _save_mlflow(clf, mlflow_dir)
    out = folder / "bundle"
    cmd = [str(BIN / "edgekit"), "bundle", "pack", str(pkl), "-o", str(out), "--name", "digits-mlp"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"edgekit bundle pack failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    bundle = next(out.glob("*.edgebundle"))
    opened = open_bundle(bundle)
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(opened.read(str(opened.model["path"])))
    samples = x[-64:]  # the last rows: the same requests in every run
    return DigitsModel(
        folder=folder,
        pickle=pkl,
        mlflow=mlflow_dir,
        bundle=bundle,
        onnx=onnx_path,
        samples=samples,
        labels=np.asarray(clf.predict(samples)),
        train_accuracy=float(clf.score(x, y)),
    )


def _save_mlflow(clf: object, path: Path) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import logging

    import mlflow.sklearn

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # it warns that pickles run code: we made this one
    mlflow.sklearn.save_model(clf, str(path), serialization_format="pickle", pip_requirements=[])


@dataclass(frozen=True)
class Target:
    """How to start one server and talk to it."""

    key: str
    title: str
    argv: list[str]
    cwd: Path
    path: str
    #: the JSON body for a batch of samples
    body: Callable[[np.ndarray], bytes]
    env: dict[str, str]
    #: how many worker processes serve requests (for the load-spread check)
    workers: int = 1


def features_body(batch: np.ndarray) -> bytes:
    """``{"features": [[...], ...]}``: the seed's form, which the runtime and the minimal app take too."""
    return json.dumps({"features": batch.tolist()}).encode()


def mlflow_body(batch: np.ndarray) -> bytes:
    """MLflow's tensor form, ``{"inputs": [[...], ...]}`` (no DataFrame built on the server)."""
    return json.dumps({"inputs": batch.tolist()}).encode()


def targets(
    model: DigitsModel, ports: dict[str, int], threads: int, runtime_args: Sequence[str] = ()
) -> dict[str, Target]:
    """Every server, by key; app files are written into the model's folder.

    ``runtime_args``: further options for ``edgekit-runtime serve`` (``--concurrency``, ``--max-batch``...).
    """
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow runs `uvicorn` from PATH
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    env["THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    folder = model.folder
    flask_app = folder / "seed_app.py"
    flask_app.write_text(FLASK_APP.format(port=ports["flask-seed"]), encoding="utf-8")
    (folder / "minimal_app.py").write_text(MINIMAL_APP, encoding="utf-8")
    (folder / "granian_app.py").write_text(GRANIAN_APP, encoding="utf-8")
    py = sys.executable
    granian = [py, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--no-ws", "--log-level", "warning"]
    runtime = [
        str(BIN / "edgekit-runtime"),
        *("serve", str(model.bundle), "--host", "127.0.0.1", "--threads", str(threads)),
        *runtime_args,
    ]
    minimal = [py, "-m", "uvicorn", "minimal_app:app", "--host", "127.0.0.1", "--no-access-log"]
    found = {
        "edgekit-runtime": Target(
            "edgekit-runtime",
            "edgekit-runtime serve",
            # telemetry on, as deployed, in a folder of its own
            [*runtime, "--port", str(ports["edgekit-runtime"]), "--state-dir", str(folder / "runtime-state")],
            folder,
            "/predict",
            features_body,
            env,
        ),
        "edgekit-runtime-2w": Target(
            "edgekit-runtime-2w",
            "edgekit-runtime serve --workers 2",
            [
                *(*runtime, "--port", str(ports["edgekit-runtime-2w"])),
                *("--state-dir", str(folder / "runtime-2w-state"), "--workers", "2"),
            ],
            folder,
            "/predict",
            features_body,
            env,
            2,
        ),
        "flask-seed": Target(
            "flask-seed", "seed Flask app (dev server)", [py, str(flask_app)], folder, "/predict", features_body, env
        ),
        "flask-gunicorn-2w": Target(
            "flask-gunicorn-2w",
            "seed Flask app, gunicorn -w 2",
            [py, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{ports['flask-gunicorn-2w']}", "seed_app:app"],
            folder,
            "/predict",
            features_body,
            env,
            2,
        ),
        "uvicorn-minimal": Target(
            "uvicorn-minimal",
            "minimal Starlette + uvicorn + ORT",
            [*minimal, "--port", str(ports["uvicorn-minimal"])],
            folder,
            "/predict",
            features_body,
            env,
        ),
        "uvicorn-minimal-2w": Target(
            "uvicorn-minimal-2w",
            "minimal app, uvicorn --workers 2",
            [*minimal, "--port", str(ports["uvicorn-minimal-2w"]), "--workers", "2"],
            folder,
            "/predict",
            features_body,
            env,
            2,
        ),
        "granian-minimal": Target(
            "granian-minimal",
            "minimal app, granian",
            [*granian, "--port", str(ports["granian-minimal"]), "minimal_app:app"],
            folder,
            "/predict",
            features_body,
            env,
        ),
        "edgekit-app-granian": Target(
            "edgekit-app-granian",
            "runtime's app, granian",
            [*granian, "--port", str(ports["edgekit-app-granian"]), "granian_app:app"],
            folder,
            "/predict",
            features_body,
            {**env, "BUNDLE": str(model.bundle)},
        ),
    }
    for workers in (1, 2):
        key = f"mlflow-{workers}w"
        argv = [str(BIN / "mlflow"), "models", "serve", "-m", str(model.mlflow), "--env-manager", "local"]
        argv += ["-h", "127.0.0.1", "-p", str(ports[key]), "-w", str(workers)]
        title = f"mlflow models serve -w {workers}"
        found[key] = Target(key, title, argv, folder, "/invocations", mlflow_body, env, workers)
    return {key: found[key] for key in KEYS}


def runtime_serve_available() -> str | None:
    """``None`` when ``edgekit-runtime serve`` exists; else why not."""
    exe = BIN / "edgekit-runtime"
    if not exe.exists():
        return f"{exe} is not installed: pip install -e ./runtime"
    done = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True, check=False)
    if done.returncode != 0 or "usage" not in done.stdout.lower() or "serve" not in done.stdout:
        return "this edgekit-runtime has no serve command yet"
    return None


def predicted_labels(data: bytes) -> list[int]:
    """The labels in a server's answer: ``prediction``/``predictions``, as a list or an output mapping."""
    answer: Any = json.loads(data)
    for key in ("prediction", "predictions"):
        if isinstance(answer, dict) and key in answer:
            answer = answer[key]
            break
    if isinstance(answer, dict):  # several outputs by name: the label output
        answer = answer.get("label", answer.get("labels"))
    if not isinstance(answer, list):
        raise TypeError(f"no list of predictions in {data[:120]!r}")
    return [int(str(v)) for v in answer]

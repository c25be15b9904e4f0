"""The PyTorch importer: real exports checked in ONNX Runtime, and one test per bad source."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgekit.errors import MissingExtraError, ModelError
from edgekit.importers import ImportOptions, detect, import_model
from edgekit.importers.torch import _call_factory

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[3]
DIGITS_SOURCE = f"{ROOT / 'tools' / 'digits_cnn.py'}:build"
DIGITS_SHAPE = ImportOptions(input_shapes=(("input", (1, 1, 8, 8)),))

# two inputs, two outputs, and the layer in a sibling file that the factory's module imports
LAYERS_PY = """
import torch
from torch import nn


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x, y):
        return self.fc(x) + y.sum(dim=1, keepdim=True), torch.relu(y) * 2
"""
MODEL_PY = """
from layers import Pair


def build():
    return Pair()
"""


def _seeded(call):
    """Call with torch's global RNG at seed 0, leaving the caller's RNG state alone."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return call()


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def digits_cnn():
    """The digits CNN's factory imported (seed 0) next to the same module built in torch."""
    imported = _seeded(lambda: import_model(DIGITS_SOURCE, DIGITS_SHAPE))
    reference = _seeded(lambda: _call_factory(ROOT / "tools" / "digits_cnn.py", "build", DIGITS_SOURCE)).eval()
    return imported, reference


@pytest.fixture(scope="module")
def pair_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    _write(folder, "layers.py", LAYERS_PY)
    source = f"{_write(folder, 'model.py', MODEL_PY)}:build"
    options = ImportOptions(input_shapes=(("left", (2, 4)), ("right", (2, 3))))
    imported = _seeded(lambda: import_model(source, options))
    return imported, _seeded(lambda: _call_factory(folder / "model.py", "build", source)).eval(), folder


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 7])
def test_digits_cnn_outputs_match_torch(digits_cnn, batch):
    imported, reference = digits_cnn
    x = torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(batch))
    (got,) = _run(imported.model, {"input": x.numpy()})
    with torch.no_grad():
        expected = reference(x).numpy()
    assert got.shape == (batch, 10)
    assert np.abs(got - expected).max() <= 1e-5


@pytest.mark.slow
def test_digits_cnn_is_plain_onnx_with_a_batch_axis(digits_cnn):
    imported, _ = digits_cnn
    model = imported.model
    onnx.checker.check_model(model)
    assert imported.kind == "torch"
    assert detect(DIGITS_SOURCE) == "torch"
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {o.version for o in model.opset_import if o.domain in {"", "ai.onnx"}} == {
        18
    }  # the exporter's lowest; kept unless an opset is asked for
    assert any("dynamo" in note for note in imported.notes)


@pytest.mark.slow
def test_two_inputs_two_outputs_with_a_sibling_import(pair_module):
    imported, reference, folder = pair_module
    assert [i.name for i in imported.model.graph.input] == ["left", "right"]
    assert [o.name for o in imported.model.graph.output] == ["output_0", "output_1"]
    x, y = torch.randn(5, 4), torch.randn(5, 3)
    got = _run(imported.model, {"left": x.numpy(), "right": y.numpy()})
    with torch.no_grad():
        expected = [t.numpy() for t in reference(x, y)]
    for g, e in zip(got, expected, strict=True):
        assert np.abs(g - e).max() <= 1e-5
    assert str(folder) not in sys.path


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [True, False])
def test_exported_program_pt2(tmp_path, capfd, dynamic):
    module = _seeded(lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)))
    module.eval()
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(module, (torch.randn(3, 4),), dynamic_shapes=shapes), path)
    imported = import_model(str(path), ImportOptions())  # no shapes: the program carries them
    x = torch.randn(7 if dynamic else 3, 4)
    (got,) = _run(imported.model, {imported.model.graph.input[0].name: x.numpy()})
    with torch.no_grad():
        assert np.abs(got - module(x).numpy()).max() <= 1e-5
    assert any("fixed batch of 3" in note for note in imported.notes) is not dynamic
    assert capfd.readouterr() == ("", "")  # torch's progress, log lines and warnings stay quiet


@pytest.mark.slow
def test_model_onnx_cannot_take_to_opset_17_stays_at_18(tmp_path):
    code = """
    import torch

    class Padded(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=1, keepdim=True) + torch.nn.functional.pad(x, (1, 1))[:, 1:-1]
    """
    path = _write(tmp_path, "padded.py", code)
    imported = import_model(f"{path}:Padded", ImportOptions(input_shapes=(("x", (1, 4)),), opset=17))
    assert {o.version for o in imported.model.opset_import if o.domain in {"", "ai.onnx"}} == {18}
    assert any("kept at opset 18" in note for note in imported.notes)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    (got,) = _run(imported.model, {"x": x})
    np.testing.assert_allclose(got, x + x.mean(axis=1, keepdims=True), rtol=1e-6)


def test_pt2_with_other_shapes_is_refused(tmp_path):
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(4, 2).eval(), (torch.randn(3, 4),)), path)
    with pytest.raises(ModelError, match=r"exported with shape \[3, 4\], not \[3, 5\]"):
        import_model(str(path), ImportOptions(input_shapes=(("x", (3, 5)),)))


def test_pt2_that_is_not_a_program(tmp_path):
    path = tmp_path / "junk.pt2"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable ExportedProgram"):
        import_model(str(path))


def test_shapes_are_required():
    with pytest.raises(ModelError, match="need example input shapes: pass --input-shape"):
        import_model(DIGITS_SOURCE)


@pytest.mark.parametrize("source", ["missing.py:build", "missing.pt2"])
def test_missing_file(tmp_path, source):
    with pytest.raises(ModelError, match="does not exist"):
        import_model(str(tmp_path / source), DIGITS_SHAPE)


def test_module_that_raises_on_import(tmp_path):
    path = _write(tmp_path, "broken.py", "x = 1 / 0\n")
    with pytest.raises(ModelError, match=r"importing .* raised ZeroDivisionError: division by zero"):
        import_model(f"{path}:build", DIGITS_SHAPE)
    assert str(tmp_path) not in sys.path


def test_unknown_factory_lists_what_the_module_defines(tmp_path):
    path = _write(tmp_path, "nets.py", "import torch\ndef build_small(): ...\nclass Net(torch.nn.Module): ...\n")
    with pytest.raises(ModelError, match=r"no callable 'build' \(it defines Net, build_small\)"):
        import_model(f"{path}:build", DIGITS_SHAPE)


def test_factory_that_returns_no_module(tmp_path):
    path = _write(tmp_path, "nets.py", "def build():\n    return {'weights': 1}\n")
    with pytest.raises(ModelError, match=r"returned a dict, not a torch\.nn\.Module"):
        import_model(f"{path}:build", DIGITS_SHAPE)


def test_factory_that_needs_arguments(tmp_path):
    path = _write(tmp_path, "nets.py", "def build(width):\n    ...\n")
    with pytest.raises(ModelError, match=r"needs arguments .*functools.partial"):
        import_model(f"{path}:build", DIGITS_SHAPE)


def test_factory_that_raises(tmp_path):
    path = _write(tmp_path, "nets.py", "def build():\n    raise KeyError('weights')\n")
    with pytest.raises(ModelError, match=r"raised KeyError: 'weights': fix the factory"):
        import_model(f"{path}:build", DIGITS_SHAPE)


def test_data_dependent_control_flow_does_not_export(tmp_path, capfd):
    code = """
    import torch

    class Gate(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x
    """
    path = _write(tmp_path, "gate.py", code)
    options = ImportOptions(input_shapes=(("x", (1, 4)),))
    with pytest.raises(ModelError, match=r"does not export to ONNX \(.*data-dependent.*torch\.export\.export"):
        import_model(f"{path}:Gate", options)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("package", ["torch", "onnxscript"])
def test_missing_package(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(MissingExtraError, match=rf"needs {package}: pip install 'edgekit\[torch\]'"):
        import_model(DIGITS_SOURCE, DIGITS_SHAPE)

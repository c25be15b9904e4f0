"""Reading and writing model files: every way a file can be wrong gets its own message."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgekit import model_io
from edgekit.errors import ModelError
from edgekit.model_io import load_model, save_model
from tests.edgekit.graphs import matmul_model, random_input, run


def load_error(path) -> ModelError:
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert info.value.path == path
    return info.value


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_missing_file(tmp_path):
    err = load_error(tmp_path / "nope.onnx")
    assert "does not exist" in str(err)
    assert "nope.onnx" in str(err)


def test_directory(tmp_path):
    err = load_error(tmp_path)
    assert "is a directory" in str(err)
    assert "pass the .onnx file inside it" in str(err)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.touch()
    assert "is empty: re-export the model" in str(load_error(path))


def test_truncated_protobuf(tmp_path):
    data = matmul_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    err = load_error(path)
    assert "is not a readable ONNX model" in str(err)
    assert "truncated or corrupt" in str(err)
    assert err.__cause__ is not None  # the protobuf error stays visible to a debugger


def test_text_file_named_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 42\n")
    assert "is not a readable ONNX model" in str(load_error(path))


@pytest.mark.parametrize(
    ("suffix", "hint"),
    [
        (".pkl", "edgekit converts it, give it to edgekit compress or bundle pack"),
        (".joblib", "edgekit converts it"),
        (".pt", "module.py:factory or a .pt2"),
    ],
)
def test_suffix_hint_for_files_that_are_not_onnx(tmp_path, suffix, hint):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"coef": list(range(50))}))
    err = load_error(path)
    assert "is not a readable ONNX model" in str(err)
    assert hint in str(err)


def test_external_data_missing_names_the_file_and_the_initializer(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(matmul_model(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    err = load_error(path)
    assert "external data file 'weights.bin'" in str(err)
    assert "initializer 'W'" in str(err)
    assert "same folder as 'model.onnx'" in str(err)


def test_external_data_present_loads_with_both_files(tmp_path):
    original = matmul_model()
    path = tmp_path / "model.onnx"
    onnx.save(matmul_model(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)

    loaded = load_model(path)

    assert [f.name for f in loaded.files] == ["model.onnx", "weights.bin"]
    assert loaded.file_bytes == path.stat().st_size + (tmp_path / "weights.bin").stat().st_size
    assert (tmp_path / "weights.bin").stat().st_size > 0
    got, want = initializers(loaded.model), initializers(original)
    assert got.keys() == want.keys()
    for name, array in want.items():
        np.testing.assert_array_equal(got[name], array)


def test_save_then_load_round_trip(tmp_path):
    model = matmul_model(seed=3)
    path = tmp_path / "nested" / "model.onnx"

    written = save_model(model, path)
    loaded = load_model(path)

    assert written == [path]
    assert loaded.files == (path,)
    assert loaded.file_bytes == path.stat().st_size
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no temporary file left
    x = random_input((4, 16))
    np.testing.assert_array_equal(run(loaded.model, {"x": x})[0], run(model, {"x": x})[0])


def test_save_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "model.onnx"
    save_model(matmul_model(seed=1), path)
    save_model(matmul_model(seed=2), path)
    np.testing.assert_array_equal(initializers(load_model(path).model)["W"], initializers(matmul_model(seed=2))["W"])


def test_large_model_goes_to_a_side_file(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "_EXTERNAL_THRESHOLD", 0)  # a 2 GiB model is no unit test
    path = tmp_path / "model.onnx"

    written = save_model(matmul_model(features=64, classes=32), path)
    loaded = load_model(path)

    assert [p.name for p in written] == ["model.onnx", "model.onnx.data"]
    assert [p.name for p in loaded.files] == ["model.onnx", "model.onnx.data"]
    np.testing.assert_array_equal(
        initializers(loaded.model)["W"], initializers(matmul_model(features=64, classes=32))["W"]
    )


def test_saving_with_a_side_file_leaves_the_model_in_memory_intact(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "_EXTERNAL_THRESHOLD", 0)
    model = matmul_model(features=64, classes=32)
    before = model.SerializeToString()
    save_model(model, tmp_path / "model.onnx")
    assert model.SerializeToString() == before


def test_saving_twice_with_a_side_file_does_not_grow_it(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "_EXTERNAL_THRESHOLD", 0)
    path = tmp_path / "model.onnx"
    save_model(matmul_model(features=64, classes=32), path)
    first = (tmp_path / "model.onnx.data").stat().st_size
    save_model(matmul_model(features=64, classes=32), path)
    assert (tmp_path / "model.onnx.data").stat().st_size == first


def test_model_bytes_round_trip():
    model = matmul_model()
    assert onnx.load_from_string(model_io.model_bytes(model)) == model


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save(matmul_model(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    (folder / "weights.bin").rename(tmp_path / "weights.bin")
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    path.write_bytes(model.SerializeToString())

    err = load_error(path)
    assert "points outside the model folder ('../weights.bin')" in str(err)


def test_file_cut_before_its_opset_import(tmp_path):
    whole = matmul_model()
    without_opsets = matmul_model()
    del without_opsets.opset_import[:]
    data = whole.SerializeToString()
    cut = len(without_opsets.SerializeToString())
    assert data[:cut] == without_opsets.SerializeToString()  # opset_import is written last
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    assert "truncated" in str(load_error(path))

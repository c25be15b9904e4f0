"""Calibration and evaluation data: read from .npz, checked against the inputs, synthesised, batched."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import Dataset, batch_size_for, load_npz, synthesize
from edgekit.errors import DataError
from edgekit.graph_stats import TensorSpec, graph_inputs
from tests.edgekit.graphs import cnn_model, random_input, run

IMAGE = TensorSpec("x", "float32", ("N", 3, 8, 8))
IDS = TensorSpec("ids", "int64", ("N", 4))


def save(tmp_path, **arrays) -> object:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def data_error(path, specs, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        load_npz(path, specs)
    return info.value


def test_arrays_named_after_inputs(tmp_path):
    x = random_input((5, 3, 8, 8))
    ids = np.arange(20).reshape(5, 4)
    data = load_npz(save(tmp_path, ids=ids, x=x), [IMAGE, IDS])

    assert list(data.inputs) == ["x", "ids"]
    np.testing.assert_array_equal(data.inputs["x"], x)
    np.testing.assert_array_equal(data.inputs["ids"], ids)
    assert data.labels is None
    assert data.size == 5
    assert not data.synthetic


def test_the_only_array_feeds_the_only_input_with_a_note_and_labels_split_off(tmp_path):
    x = random_input((6, 3, 8, 8))
    labels = np.arange(6)
    data = load_npz(save(tmp_path, images=x, label=labels), [IMAGE])

    np.testing.assert_array_equal(data.inputs["x"], x)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.notes == (
        "data.npz: array 'images' feeds the model's only input 'x' (name the array 'x' to make that explicit)",
    )
    assert data.head(2).notes == data.notes


def test_arrays_named_x_and_y_are_refused_with_the_names_to_use(tmp_path):
    spec = TensorSpec("input", "float32", ("batch", 64))
    path = save(tmp_path, x=random_input((6, 64)), y=np.arange(6))
    err = data_error(path, [spec], "name each array after its model input")
    assert str(err) == (
        "data.npz has arrays ['x', 'y'] but the model's inputs are ['input'] (missing ['input']): "
        "name each array after its model input, and labels 'label': np.savez(path, input=x, label=y)"
    )


def test_y_is_never_taken_as_labels(tmp_path):
    spec = TensorSpec("input", "float32", ("batch", 64))
    data = load_npz(save(tmp_path, input=random_input((6, 64)), y=np.arange(6)), [spec])
    assert data.labels is None
    assert data.notes == (
        "data.npz: array 'y' is neither a model input nor 'label': not used (labels go in an array named 'label')",
    )


def test_labels_is_the_one_other_name_for_label(tmp_path):
    data = load_npz(save(tmp_path, x=random_input((3, 3, 8, 8)), labels=np.arange(3)), [IMAGE])
    np.testing.assert_array_equal(data.labels, np.arange(3))
    assert data.notes == ()


def test_the_example_fix_names_every_input_even_one_that_is_no_identifier(tmp_path):
    specs = [TensorSpec("input:0", "float32", ("N", 2)), IDS]
    err = data_error(save(tmp_path, a=random_input((2, 2))), specs, "missing")
    assert str(err).endswith("np.savez(path, **{'input:0': x0}, ids=x1, label=y)")


def test_float64_is_cast_to_float32(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    data = load_npz(save(tmp_path, x=x), [IMAGE])
    assert data.inputs["x"].dtype == np.float32
    np.testing.assert_allclose(data.inputs["x"], x, rtol=1e-6)
    assert data.inputs["x"].flags.c_contiguous


def test_missing_file(tmp_path):
    err = data_error(tmp_path / "nope.npz", [IMAGE], "calibration file .* does not exist")
    assert err.path == tmp_path / "nope.npz"


def test_not_an_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("x,y\n1,2\n")
    data_error(path, [IMAGE], "is not a readable .npz archive .*np.savez")


def test_missing_batch_dimension(tmp_path):
    err = data_error(save(tmp_path, x=random_input((3, 8, 8))), [IMAGE], "add the batch dimension")
    assert "expects shape [N, 3, 8, 8] (float32), got [3, 8, 8] (float32)" in str(err)


def test_wrong_fixed_dimension(tmp_path):
    data_error(save(tmp_path, x=random_input((2, 3, 8, 9))), [IMAGE], "dimension 3 must be 8")


def test_wrong_rank(tmp_path):
    data_error(save(tmp_path, x=random_input((2, 192))), [IMAGE], "reshape the array to the model's rank 4")


def test_wrong_names_list_what_there_is_and_what_is_needed(tmp_path):
    path = save(tmp_path, image=random_input((2, 3, 8, 8)), tokens=np.zeros((2, 4), np.int64))
    err = data_error(path, [IMAGE, IDS], "name each array after its model input")
    assert "['image', 'tokens']" in str(err)
    assert "['x', 'ids']" in str(err)


def test_float_data_for_an_integer_input(tmp_path):
    data_error(save(tmp_path, ids=np.zeros((2, 4), np.float32)), [IDS], "store integers, not floats")


def test_label_count_must_match_the_samples(tmp_path):
    path = save(tmp_path, x=random_input((4, 3, 8, 8)), labels=np.arange(3))
    err = data_error(path, [IMAGE], "one label per sample")
    assert str(err) == "array 'labels' in data.npz has shape [3] for 4 samples: give one label per sample, shape [4]"


def test_a_single_label_for_many_samples_is_refused(tmp_path):
    path = save(tmp_path, x=random_input((4, 3, 8, 8)), label=np.int64(3))
    data_error(path, [IMAGE], r"array 'label' in data.npz has shape \[\] for 4 samples")


def test_inputs_with_different_sample_counts(tmp_path):
    path = save(tmp_path, x=random_input((4, 3, 8, 8)), ids=np.zeros((3, 4), np.int64))
    data_error(path, [IMAGE, IDS], "different sample counts")


def test_loaded_data_runs_in_the_model(tmp_path):
    model = cnn_model()
    x = random_input((5, 3, 8, 8)).astype(np.float64)
    data = load_npz(save(tmp_path, x=x), graph_inputs(model), role="evaluation")
    (logits,) = run(model, data.inputs)
    assert logits.shape == (5, 10)


def test_an_input_named_like_a_label_key_is_an_input(tmp_path):
    spec = TensorSpec("label", "float32", ("N", 2))
    data = load_npz(save(tmp_path, label=random_input((3, 2))), [spec])
    assert data.inputs["label"].shape == (3, 2)
    assert data.labels is None


def test_synthesize_follows_the_specs():
    specs = [IMAGE, IDS, TensorSpec("mask", "bool", ("N", 4))]
    data = synthesize(specs, samples=7, seed=3)

    assert data.synthetic
    assert data.labels is None
    assert data.inputs["x"].shape == (7, 3, 8, 8)
    assert data.inputs["x"].dtype == np.float32
    assert data.inputs["x"].std() > 0.5  # noise, not zeros
    assert data.inputs["ids"].dtype == np.int64
    assert data.inputs["ids"].min() >= 0
    assert data.inputs["mask"].dtype == np.bool_
    np.testing.assert_array_equal(synthesize(specs, samples=7, seed=3).inputs["x"], data.inputs["x"])


def test_synthesize_refuses_a_free_non_batch_dimension():
    spec = TensorSpec("x", "float32", ("N", 3, "H", "W"))
    with pytest.raises(DataError, match="free dimension 'H'") as info:
        synthesize([spec])
    assert "--input-shape x=" in str(info.value)


def test_synthesize_refuses_an_unknown_shape():
    with pytest.raises(DataError, match="--input-shape x=1"):
        synthesize([TensorSpec("x", "float32", None)])


def test_synthesize_with_a_shape_override():
    spec = TensorSpec("x", "float32", ("N", 3, "H", "W"))
    data = synthesize([spec], samples=4, shapes={"x": [1, 3, 16, 12]})
    assert data.inputs["x"].shape == (4, 3, 16, 12)


def test_synthesize_refuses_an_override_of_the_wrong_rank():
    spec = TensorSpec("x", "float32", ("N", 3, "H", "W"))
    with pytest.raises(DataError, match="has rank 3, the model's is 4"):
        synthesize([spec], shapes={"x": [1, 16, 12]})


def test_batch_size_for():
    assert batch_size_for([IMAGE], 16) == 16
    assert batch_size_for([TensorSpec("x", "float32", (1, 3, 8, 8))], 16) == 1
    assert batch_size_for([TensorSpec("x", "float32", (4, 3)), IDS], 16) == 4
    assert batch_size_for([TensorSpec("x", "float32", None)], 16) == 16


def test_head_and_batches():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    data = Dataset({"x": x}, np.arange(10), "test")

    head = data.head(4)
    batches = data.batches(4)

    assert head.size == 4
    np.testing.assert_array_equal(head.labels, np.arange(4))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches]), x)


def test_batches_fit_a_fixed_batch_model():
    model = cnn_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 4
    specs = graph_inputs(model)
    data = Dataset({"x": random_input((10, 3, 8, 8))}, None, "test")
    batches = data.batches(batch_size_for(specs, 16), exact=True)
    assert [len(b["x"]) for b in batches] == [4, 4, 4]
    for feeds in batches:
        run(model, feeds)

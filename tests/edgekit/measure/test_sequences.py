"""Stateful models run as sequences: state fed back, pairs checked or found, sequence files read."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from edgekit.data import load_sequences
from edgekit.errors import ConfigError, DataError
from edgekit.graph_stats import TensorSpec, graph_inputs
from edgekit.measure.sequences import SequenceRunner, detect_state, load, resolve_state
from edgekit.model_io import model_bytes
from tests.edgekit.graphs import FLOAT, make_model

STATE = (("s", "sn"),)


def accumulator(state_output: str = "sn"):
    """``sn = x + s / 2`` and ``y = 10 * sn``: each output depends on every earlier step through ``s``."""
    half = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")
    ten = numpy_helper.from_array(np.array(10.0, dtype=np.float32), "ten")
    nodes = [
        helper.make_node("Mul", ["s", "half"], ["decayed"]),
        helper.make_node("Add", ["x", "decayed"], [state_output]),
        helper.make_node("Mul", [state_output, "ten"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info(n, FLOAT, [1, 1]) for n in ("x", "s")]
    outputs = [helper.make_tensor_value_info(n, FLOAT, [1, 1]) for n in ("y", state_output)]
    return make_model(nodes, inputs, outputs, [half, ten])


def save_sequences(path, x, **arrays):
    np.savez(path, x=np.asarray(x, dtype=np.float32).reshape(*np.shape(x), 1, 1), **arrays)
    return path


def read(path, model, state=STATE):
    """The file through the loader compress uses, unrolled by ``model``."""
    specs = graph_inputs(model)
    return load(path, specs, role="calibration", state=state, detected=False, model_bytes=model_bytes(model), threads=1)


def test_each_step_is_fed_the_state_the_step_before_returned(tmp_path):
    model = accumulator()
    data = read(save_sequences(tmp_path / "seq.npz", [[1, 2, 3], [4, 0, 0]]), model)

    runner = SequenceRunner(model_bytes(model), data.sequences, threads=1)
    (y,) = runner.outputs()

    # by hand: s starts at 0; sn = x + s/2; y = 10 sn
    # sequence 1: sn = 1, 2 + 0.5 = 2.5, 3 + 1.25 = 4.25; sequence 2 starts again at 0: 4, 2, 1
    assert runner.output_names == ["y"]  # the state output is fed back, not judged
    np.testing.assert_allclose(y.reshape(-1), [10, 25, 42.5, 40, 20, 10])
    # the unrolled rows hold the state the FP32 model fed back: what calibration and timing read
    np.testing.assert_allclose(data.inputs["s"].reshape(-1), [0, 1, 2.5, 0, 4, 2])
    np.testing.assert_allclose(data.inputs["x"].reshape(-1), [1, 2, 3, 4, 0, 0])
    assert data.size == 6
    assert data.batches(1, exact=True)[2] == {"x": data.inputs["x"][2:3], "s": data.inputs["s"][2:3]}


def test_a_sequence_starts_from_the_state_the_file_gives(tmp_path):
    model = accumulator()
    path = save_sequences(tmp_path / "seq.npz", [[1, 2]], s=np.full((1, 1, 1), 4.0, dtype=np.float32))

    data = read(path, model)
    (y,) = SequenceRunner(model_bytes(model), data.sequences, threads=1).outputs()

    np.testing.assert_allclose(y.reshape(-1), [30, 35])  # sn = 1 + 2 = 3, then 2 + 1.5 = 3.5


def test_a_candidate_feeds_back_its_own_state_not_the_references(tmp_path):
    model, other = accumulator(), accumulator()
    other.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "half"))
    data = read(save_sequences(tmp_path / "seq.npz", [[1, 2, 3]]), model)

    (y,) = SequenceRunner(model_bytes(other), data.sequences, threads=1).outputs()

    np.testing.assert_allclose(y.reshape(-1), [10, 20, 30])  # it forgets: sn = x


def test_head_keeps_whole_sequences_or_the_first_steps_of_one(tmp_path):
    data = read(save_sequences(tmp_path / "seq.npz", [[1, 2, 3], [4, 5, 6], [7, 8, 9]]), accumulator())

    head, short = data.head(7), data.head(2)

    assert head.sequences is not None
    assert (head.sequences.count, head.sequences.length, head.size) == (2, 3, 6)
    assert short.sequences is not None
    assert (short.sequences.count, short.sequences.length, short.size) == (1, 2, 2)
    np.testing.assert_allclose(short.inputs["x"].reshape(-1), [1, 2])
    np.testing.assert_allclose(short.inputs["s"].reshape(-1), [0, 1])


def test_labels_are_one_per_step(tmp_path):
    model = accumulator()
    path = save_sequences(tmp_path / "seq.npz", [[1, 2], [3, 4]], label=np.array([[0, 1], [1, 1]]))
    assert read(path, model).labels.tolist() == [0, 1, 1, 1]

    bad = save_sequences(tmp_path / "bad.npz", [[1, 2], [3, 4]], label=np.array([0, 1]))
    with pytest.raises(DataError) as err:
        read(bad, model)
    assert err.value.message == "'label' in bad.npz has shape [2]: give one label per step, [2, 2]"


def test_a_file_of_samples_with_their_state_is_read_as_before(tmp_path):
    model = accumulator()
    path = tmp_path / "samples.npz"
    np.savez(path, x=np.ones((5, 1), np.float32), s=np.zeros((5, 1), np.float32))

    data = read(path, model)

    assert data.sequences is None
    assert data.size == 5


def test_a_file_of_samples_without_the_state_says_to_give_sequences(tmp_path):
    path = tmp_path / "frames.npz"
    np.savez(path, x=np.ones((5, 1), np.float32))

    with pytest.raises(DataError) as err:
        read(path, accumulator())

    assert err.value.message == (
        "frames.npz gives no value for the state the model feeds back (s): give sequences, 'x' of shape "
        "[S, T, 1, 1] (S sequences of T steps), or every sample's state"
    )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.ones((2, 3, 4, 1), np.float32)},
            (
                "'x' in bad.npz has shape [2, 3, 4, 1]: sequence data is [S, T, 1, ...] for every input, "
                "one call of batch 1 per step, with the same S=2 and T=3"
            ),
        ),
        (
            {"x": np.ones((2, 3, 1, 1), np.float32), "s": np.ones((3, 1, 1), np.float32)},
            "'s' in bad.npz has shape [3, 1, 1]: a start state per sequence is [2, 1, 1]",
        ),
    ],
)
def test_sequence_files_that_do_not_fit_are_refused_with_the_shape_to_use(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)

    with pytest.raises(DataError) as err:
        load_sequences(path, graph_inputs(accumulator()), STATE)

    assert err.value.message == message


def test_given_pairs_are_checked_against_the_model():
    model = accumulator()
    assert resolve_state(model, STATE) == STATE
    assert resolve_state(model, ()) == ()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            (("h", "sn"),),
            "--state h:sn: the model has no input 'h' (the model's inputs are x, s; its outputs y, sn)",
        ),
        (
            (("s", "hn"),),
            "--state s:hn: the model has no output 'hn' (the model's inputs are x, s; its outputs y, sn)",
        ),
        (
            (("s", "sn"), ("x", "y")),
            (
                "--state makes every input state (the model's inputs are x, s; its outputs y, sn): "
                "a step needs an input that is not state"
            ),
        ),
        (
            (("s", "sn"), ("s", "y")),
            "--state names the input 's' twice: pair each state input with one output",
        ),
    ],
)
def test_given_pairs_that_do_not_fit_name_what_the_model_has(given, message):
    with pytest.raises(ConfigError) as err:
        resolve_state(accumulator(), given)
    assert err.value.message == message


def test_a_pair_of_different_shapes_is_refused():
    model = accumulator()
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2

    with pytest.raises(ConfigError) as err:
        resolve_state(model, (("s", "y"),))

    assert err.value.message == (
        "--state s:y: input 's' is float32 [1, 1] but output 'y' is float32 [1, 2]: "
        "pair each state input with the output of its shape"
    )


def spec(name: str, shape: tuple[int, ...] = (1, 1, 64), dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, dtype, shape)


@pytest.mark.parametrize(
    ("inputs", "outputs", "found"),
    [
        (["x", "h", "c"], ["logits", "hn", "cn"], (("h", "hn"), ("c", "cn"))),
        (["x", "h", "c"], ["logits", "h_out", "c_out"], (("h", "h_out"), ("c", "c_out"))),
        (["x", "state_in"], ["y", "state_out"], (("state_in", "state_out"),)),
        (["x", "h0"], ["y", "hn"], (("h0", "hn"),)),
        (["x", "h"], ["y", "h_out", "hn"], ()),  # two candidates: not guessed
        (["x"], ["x_out"], ()),  # every input would be state: an autoencoder, not a recurrence
        (["input", "h"], ["output", "y"], ()),  # no output named like a next state
    ],
)
def test_state_is_found_by_name_shape_and_type(inputs, outputs, found):
    assert detect_state([spec(n) for n in inputs], [spec(n) for n in outputs]) == found


def test_state_of_another_shape_or_type_is_not_found():
    inputs = [spec("x"), spec("h"), spec("c")]
    assert detect_state(inputs, [spec("hn", (1, 1, 32)), spec("cn", dtype="float16")]) == ()
    assert detect_state([spec("x"), spec("h", (1, "N", 64))], [spec("hn", (1, "N", 64))]) == ()  # type: ignore[arg-type]

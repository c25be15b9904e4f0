"""tools/minilm.py: the safetensors reader, the WordPiece tokenizer, and the cached all-MiniLM-L6-v2 export."""

from __future__ import annotations

import json
import struct

import numpy as np

from tests.models import cached, tools_module

minilm = tools_module("minilm")


def test_safetensors_read_with_numpy(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    ids = np.array([[7, 8]], dtype=np.int64)
    header = {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "ids": {"dtype": "I64", "shape": [1, 2], "data_offsets": [24, 40]},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + w.tobytes() + ids.tobytes())

    tensors = minilm.read_safetensors(path)

    assert set(tensors) == {"w", "ids"}
    np.testing.assert_array_equal(tensors["w"], w)
    np.testing.assert_array_equal(tensors["ids"], ids)


def test_wordpiece_lowercases_splits_punctuation_and_pads(tmp_path):
    vocab = tmp_path / "vocab.txt"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cafe", "play", "##ing", ".", "!"]
    vocab.write_text("".join(f"{w}\n" for w in words))
    tokenizer = minilm.WordPiece(vocab)

    feeds = tokenizer.encode(["The Café playing.", "xyz!"], length=8)

    assert feeds["input_ids"].tolist() == [[2, 4, 5, 6, 7, 8, 3, 0], [2, 1, 9, 3, 0, 0, 0, 0]]
    assert feeds["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
    assert feeds["input_ids"].dtype == np.int64


def test_cached_export_puts_paraphrases_closer_than_unrelated_sentences():
    import onnxruntime as ort

    model = cached("minilm")
    tokenizer = minilm.WordPiece(model.with_name("minilm_vocab.txt"))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    texts = ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "The stock market fell sharply."]

    (emb,) = session.run(["embeddings"], tokenizer.encode(texts))

    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert similar > 0.5 > unrelated
    with np.load(model.with_name("minilm_eval.npz")) as data:
        assert data["input_ids"].shape == (50, minilm.SEQ_LEN)
        assert set(data) == {"input_ids", "attention_mask"}

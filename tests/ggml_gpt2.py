"""Write a tiny GPT-2 model in the legacy GGML file format (the one ctransformers reads).

Layout, all little-endian (the ggml `examples/gpt-2` loader, as vendored by ctransformers):

    uint32  magic 0x67676d6c ("ggml")
    int32   n_vocab, n_ctx, n_embd, n_head, n_layer, ftype      (ftype 0 = all f32, 1 = mostly f16)
    int32   n_vocab again, then per token: uint32 byte length + the raw bytes
    tensors until end of file, each:
        int32 n_dims, int32 len(name), int32 ttype (0 = f32, 1 = f16)
        int32 ne[0] .. ne[n_dims-1]   (ggml order: ne[0] is the fastest-varying axis,
                                       so a numpy array of shape (rows, cols) has ne = [cols, rows])
        name bytes, then the data (C order)

The big matrices (wte, lm_head and the four per-layer weight matrices) have the type
that `ftype` selects; the biases, layer-norm parameters and wpe are always f32.

The weights are random, except that the end-of-text token can never be sampled (see
`write_tiny_gpt2`), so generation always runs for the requested number of tokens.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
EOS = "<|endoftext|>"

# Word tokens (GPT-2 style: a leading space belongs to the word). The tokenizer matches
# the longest vocabulary entry, so these are used for the prompt where they fit.
WORDS = [
    " the", " and", " you", " hi", " hello", " stream", " chat", " game", " play",
    " is", " it", " to", " of", " a", " I", " we", " nice", " cool", " fun", " yes",
    " no", "Hello", "User", "Assistant", "ing", "ed",
]


def tiny_vocab(n_vocab: int | None = None) -> list[str]:
    """Newline + printable ASCII + a few words (+ filler words up to n_vocab) + EOS last."""
    tokens = ["\n"] + [chr(c) for c in range(32, 127)] + WORDS
    if n_vocab is not None:
        if n_vocab < len(tokens) + 1:
            raise ValueError(f"n_vocab must be >= {len(tokens) + 1}")
        letters = "abcdefghijklmnopqrstuvwxyz"
        i = 0
        while len(tokens) < n_vocab - 1:
            filler = " " + letters[i // 26 % 26] + letters[i % 26] + ("" if i < 676 else str(i))
            if filler not in tokens:
                tokens.append(filler)
            i += 1
    return tokens + [EOS]


def _tensor(f, name: str, array: np.ndarray) -> None:
    ttype = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}[array.dtype]
    encoded = name.encode("utf-8")
    dims = array.shape[::-1]  # ggml ne[] order
    f.write(struct.pack("<iii", len(dims), len(encoded), ttype))
    f.write(struct.pack(f"<{len(dims)}i", *dims))
    f.write(encoded)
    f.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())


def write_tiny_gpt2(
    path: str | Path,
    n_vocab: int | None = None,
    n_ctx: int = 256,
    n_embd: int = 32,
    n_head: int = 4,
    n_layer: int = 2,
    seed: int = 0,
    ftype: int = 1,
) -> list[str]:
    """Write a random GPT-2 to `path`; returns the vocabulary (token id -> text).

    `n_vocab` None means the built-in vocabulary (about 120 tokens); a larger value pads
    it with filler words. `ftype` 1 stores the big matrices as f16, 0 as f32.

    Embedding dimension 0 is reserved: the final layer norm pins it to 1.0 (gain 0,
    bias 1) and only the EOS row of lm_head reads it, with weight -1e4, so EOS has a
    logit of -1e4 and is never sampled.
    """
    if n_embd % n_head:
        raise ValueError("n_embd must be a multiple of n_head")
    if ftype not in (0, 1):
        raise ValueError("ftype must be 0 (f32) or 1 (f16)")
    vocab = tiny_vocab(n_vocab)
    n_vocab = len(vocab)
    eos = vocab.index(EOS)
    big = np.float16 if ftype == 1 else np.float32
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.2, dtype=np.float32) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    wte = normal(n_vocab, n_embd, scale=0.5, dtype=big)
    lm_head = normal(n_vocab, n_embd, scale=1.0)
    lm_head[:, 0] = 0.0
    lm_head[eos, :] = 0.0
    lm_head[eos, 0] = -1e4
    ln_f_g, ln_f_b = ones(n_embd), zeros(n_embd)
    ln_f_g[0], ln_f_b[0] = 0.0, 1.0

    header = struct.pack("<I6i", GGML_MAGIC, n_vocab, n_ctx, n_embd, n_head, n_layer, ftype)
    with open(path, "wb") as f:
        f.write(header)
        f.write(struct.pack("<i", n_vocab))
        for token in vocab:
            data = token.encode("utf-8")
            f.write(struct.pack("<I", len(data)))
            f.write(data)

        _tensor(f, "model/ln_f/g", ln_f_g)
        _tensor(f, "model/ln_f/b", ln_f_b)
        _tensor(f, "model/wte", wte)
        _tensor(f, "model/wpe", normal(n_ctx, n_embd, scale=0.1))
        # After wte: the loader copies wte into lm_head, then this overwrites it.
        _tensor(f, "model/lm_head", lm_head.astype(big))
        for i in range(n_layer):
            p = f"model/h{i}/"
            _tensor(f, p + "ln_1/g", ones(n_embd))
            _tensor(f, p + "ln_1/b", zeros(n_embd))
            _tensor(f, p + "ln_2/g", ones(n_embd))
            _tensor(f, p + "ln_2/b", zeros(n_embd))
            # Rows are output units: (out, in) in numpy is ne = [in, out] in ggml.
            _tensor(f, p + "attn/c_attn/w", normal(3 * n_embd, n_embd, dtype=big))
            _tensor(f, p + "attn/c_attn/b", normal(3 * n_embd, scale=0.02))
            _tensor(f, p + "attn/c_proj/w", normal(n_embd, n_embd, dtype=big))
            _tensor(f, p + "attn/c_proj/b", normal(n_embd, scale=0.02))
            _tensor(f, p + "mlp/c_fc/w", normal(4 * n_embd, n_embd, dtype=big))
            _tensor(f, p + "mlp/c_fc/b", normal(4 * n_embd, scale=0.02))
            _tensor(f, p + "mlp/c_proj/w", normal(n_embd, 4 * n_embd, dtype=big))
            _tensor(f, p + "mlp/c_proj/b", normal(n_embd, scale=0.02))
    return vocab

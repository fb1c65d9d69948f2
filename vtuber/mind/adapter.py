"""A LoRA adapter on the local model (persona `model.adapter`, made by `vtuber tune`): checked
against the model before llama.cpp loads it, so a mismatch is one clear line.

The GGUF metadata is read here with a few lines of `struct` (the live path does not need
the `gguf` package, which comes with the tune extra).
"""

from __future__ import annotations

import struct
from pathlib import Path

from vtuber.errors import UserError

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
MAX_KV = 4096


def read_metadata(path: Path, keys: set[str] | None = None) -> dict:
    """The GGUF file's key/values (scalars and strings; arrays skipped), stopping once `keys` are found."""
    out: dict = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{path}: not a GGUF file")
        version, _n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
        if version < 2 or n_kv > MAX_KV:
            raise UserError(f"{path}: unsupported GGUF header (version {version}, {n_kv} keys)")

        def string() -> str:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 1 << 24:
                raise UserError(f"{path}: corrupt GGUF metadata")
            return f.read(n).decode("utf-8", "replace")

        def value(t: int):
            if t == 8:
                return string()
            if t == 9:
                (it, n) = struct.unpack("<IQ", f.read(12))
                if it == 8:
                    for _ in range(n):
                        string()
                elif it in _SCALARS:
                    f.seek(n * struct.calcsize(_SCALARS[it]), 1)
                else:
                    raise UserError(f"{path}: corrupt GGUF metadata")
                return None
            if t not in _SCALARS:
                raise UserError(f"{path}: corrupt GGUF metadata")
            fmt = _SCALARS[t]
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        for _ in range(n_kv):
            key = string()
            (t,) = struct.unpack("<I", f.read(4))
            v = value(t)
            if v is not None:
                out[key] = v
            if keys is not None and keys <= set(out):
                break
    return out


def base_info(model: Path) -> dict:
    """What the tuner and the adapter check need of a base GGUF."""
    meta = read_metadata(model)
    arch = meta.get("general.architecture", "")
    return {
        "arch": arch,
        "name": str(meta.get("general.name", "")),
        "block_count": int(meta.get(f"{arch}.block_count", 0)),
        "embedding_length": int(meta.get(f"{arch}.embedding_length", 0)),
        "n_head": int(meta.get(f"{arch}.attention.head_count", 0)),
        "n_head_kv": int(meta.get(f"{arch}.attention.head_count_kv", meta.get(f"{arch}.attention.head_count", 0))),
    }


def check_adapter(adapter: Path, model: Path) -> None:
    """One clear line when `adapter` is not a LoRA adapter for `model` (before llama.cpp loads it)."""
    if not adapter.is_file():
        raise UserError(f"{adapter}: the adapter file does not exist")
    meta = read_metadata(adapter)
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        raise UserError(f"{adapter}: not a LoRA adapter GGUF (made by `vtuber tune`)")
    base = base_info(model)
    if meta.get("general.architecture") != base["arch"]:
        raise UserError(f"{adapter}: the adapter is for a {meta.get('general.architecture')} model, "
                        f"but {model.name} is {base['arch'] or 'unknown'}")
    made_for = (meta.get("vtuber.base.block_count"), meta.get("vtuber.base.embedding_length"))
    if None not in made_for and made_for != (base["block_count"], base["embedding_length"]):
        raise UserError(
            f"{adapter}: the adapter was made for {meta.get('vtuber.base.file', 'another model')} "
            f"({made_for[0]} layers of {made_for[1]}), not {model.name} "
            f"({base['block_count']} layers of {base['embedding_length']}): tune again for this model"
        )

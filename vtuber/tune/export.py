"""The tuned LoRA as a GGUF adapter llama.cpp loads (`Llama(..., lora_path=...)`), written with
the `gguf` package.

llama.cpp's adapter format: `general.type = adapter`, `adapter.type = lora`,
`adapter.lora.alpha`, the base model's architecture, and for each adapted weight `W` two
tensors `W.lora_a` (rank x in) and `W.lora_b` (out x rank), named as the base GGUF names `W`
(`blk.N.attn_q.weight`, ...). llama.cpp adds `scale * alpha / rank * B @ A` to `W`'s output,
as peft does.

One subtlety: GGUF stores a llama model's query and key weights with their rows permuted for
its rotary layout, and transformers undoes that when it reads the GGUF; the LoRA learned on
the HF layout must be permuted back for those two (its `B` rows, which are output rows).

The adapter also records which base it was made for (file name, size, the base's own name
and shape) under `vtuber.base.*`, so a mismatch is one clear line before llama.cpp sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

from vtuber.errors import UserError
from vtuber.mind.adapter import base_info  # noqa: F401  (the tuner reads the base through it)

HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
_PEFT_NAME = re.compile(r"layers\.(\d+)\.(self_attn\.\w+_proj|mlp\.\w+_proj)\.lora_([AB])\.(?:default\.)?weight$")


def rotary_rows(w, n_head: int):
    """Rows of a query/key projection in GGUF's order (llama.cpp's convert permutation)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(lora_state: dict, n_head: int, n_head_kv: int) -> dict:
    """peft's LoRA state (torch tensors or arrays) -> {gguf name: float32 array}."""
    import numpy as np

    out = {}
    for name, tensor in lora_state.items():
        m = _PEFT_NAME.search(name)
        if m is None:
            raise UserError(f"the adapter holds {name!r}, which has no place in a llama GGUF")
        layer, module, ab = m.groups()
        arr = np.asarray(tensor.detach().float().cpu().numpy() if hasattr(tensor, "detach") else tensor, dtype=np.float32)
        if ab == "B" and module == "self_attn.q_proj":
            arr = rotary_rows(arr, n_head)
        elif ab == "B" and module == "self_attn.k_proj":
            arr = rotary_rows(arr, n_head_kv)
        out[f"blk.{layer}.{HF_TO_GGUF[module]}.weight.lora_{ab.lower()}"] = np.ascontiguousarray(arr)
    return out


def write_adapter(path: Path, lora_state: dict, alpha: float, base: Path, base_info: dict, about: dict) -> None:
    """Write the adapter GGUF at `path` (via a temporary file: never a half-written adapter)."""
    import gguf

    tensors = gguf_tensors(lora_state, base_info["n_head"], base_info["n_head_kv"])
    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), base_info["arch"])
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(alpha))
    w.add_name(about.get("name", "vtuber persona adapter"))
    w.add_string("vtuber.base.file", base.name)
    w.add_uint64("vtuber.base.size", base.stat().st_size)
    w.add_string("vtuber.base.name", base_info.get("name", ""))
    w.add_uint32("vtuber.base.block_count", base_info["block_count"])
    w.add_uint32("vtuber.base.embedding_length", base_info["embedding_length"])
    for key, value in about.items():
        if key != "name":
            w.add_string(f"vtuber.tune.{key}", str(value))
    for name in sorted(tensors):
        w.add_tensor(name, tensors[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)

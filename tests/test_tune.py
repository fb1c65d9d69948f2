"""`vtuber tune` for real: a few steps of LoRA training on the bundled model (transformers +
peft on the CPU), stopped with Ctrl-C and resumed, then the GGUF adapter loaded by llama.cpp.

What must hold whatever the model says: the adapter loads in llama.cpp and moves the output
distribution the way the trained model in torch moves it (logits compared, not words).
Needs the tune extra (torch): skipped with the reason when it is missing, failed under CI.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import require_system
from vtuber.mind.persona import load_persona
from vtuber.models import bundled_llm

pytestmark = pytest.mark.models

PROMPT = "<|im_start|>system\nYou are Miko.<|im_end|>\n<|im_start|>user\nviewer: do you like tea?<|im_end|>\n<|im_start|>assistant\n"


def _tune_extra() -> None:
    missing = [m for m in ("torch", "transformers", "peft", "gguf") if importlib.util.find_spec(m) is None]
    require_system(f"the tune extra (missing: {', '.join(missing)})", not missing,
                   "install torch's CPU build, then pip install 'vtuber[tune]' (README, \"Tune her model\")")


def llama_logits(model, adapter=None) -> np.ndarray:
    from llama_cpp import Llama

    kw = {"lora_path": str(adapter)} if adapter else {}
    llm = Llama(model_path=str(model), n_ctx=256, n_threads=2, verbose=False, logits_all=True, **kw)
    try:
        toks = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        llm.eval(toks)
        return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    finally:
        llm.close()


def test_tune_stops_resumes_and_the_adapter_moves_llama_cpp_like_torch(tmp_path):
    _tune_extra()
    import torch

    from vtuber.tune import tune
    from vtuber.tune.train import Settings

    base = bundled_llm()
    out = tmp_path / "miko.gguf"
    persona = load_persona("miko")
    settings = Settings(steps=4, batch=2, checkpoint_every=100, lr=5e-3)
    said = []

    def stop_at_two(step, total, loss):
        if step == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises mid-training

    with pytest.raises(KeyboardInterrupt):
        tune(persona, base, out, settings, judge_it=False, progress=stop_at_two, say=said.append)
    assert not out.exists() and (tmp_path / "miko.gguf.work" / "checkpoint.pt").is_file()
    assert any("stopped at step 2 of 4" in s for s in said), said

    steps = []
    result = tune(persona, base, out, settings, judge_it=False, progress=lambda s, t, l: steps.append(s),
                  say=said.append)
    assert steps == [3, 4] and any("resuming at step 2" in s for s in said), (steps, said)
    assert out.is_file() and not (tmp_path / "miko.gguf.work").exists()

    # llama.cpp loads it, and its logits move the way the trained model's do in torch.
    trained = result.model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name)
    ids = torch.tensor([tok(PROMPT)["input_ids"]])
    with torch.no_grad():
        torch_tuned = trained(ids).logits[0, -1].double().numpy()
        with trained.disable_adapter():
            torch_base = trained(ids).logits[0, -1].double().numpy()
    before, after = llama_logits(base), llama_logits(base, out)
    moved = after - before
    assert np.abs(moved).max() > 0.05, "the adapter changed nothing"
    assert np.corrcoef(moved, torch_tuned - torch_base)[0, 1] > 0.9

    # The persona names it; the live backend loads it the way the co-host does.
    from vtuber.config import load_config
    from vtuber.models import resolve, with_persona_model
    from vtuber.services import make_llm

    own = tmp_path / "miko.yaml"
    own.write_text(persona.path and open(persona.path, encoding="utf-8").read() + f"\nmodel: {{adapter: {out.name}}}\n")
    cfg = with_persona_model(load_config(None, {}), load_persona(str(own)))
    assert cfg.models.adapter == str(out)
    llm = make_llm(cfg, resolve(cfg))
    try:
        assert list(llm.stream([{"role": "user", "content": "viewer: hi Miko!"}], max_tokens=4))
    finally:
        llm.close()

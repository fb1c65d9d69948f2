"""The LoRA fine-tune itself: transformers + peft on the CPU, from the bundled GGUF.

transformers reads the GGUF (dequantized to float32: 134.5 M parameters for the bundled
SmolLM2); peft puts a rank-8 LoRA on the attention's query and value projections (0.46 M
trainable weights); each example is the live prompt's shape (the persona's system prompt,
"viewer: line", her answer) and only her answer's tokens are learned.

Resumable and Ctrl-C safe: a checkpoint (the LoRA weights, the optimizer, the step, and a
hash of the data and settings it belongs to) is written every few steps and when the user
stops it, always through a temporary file; run again and it goes on from there (with other
data or settings it starts afresh). The adapter is written only at the end.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from vtuber.errors import UserError
from vtuber.tune.data import Example

TUNE_HINT = (
    "`vtuber tune` needs the tune extra: install torch's CPU build first (README, \"Tune her model\"), "
    "then pip install 'vtuber[tune]'"
)


@dataclass(frozen=True)
class Settings:
    """How to train (all of it goes into the checkpoint's hash)."""

    steps: int = 0  # 0: epochs * examples / batch
    epochs: int = 4
    batch: int = 4
    rank: int = 8
    alpha: float = 16.0
    lr: float = 3e-4
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 7
    threads: int = 2
    checkpoint_every: int = 10


def import_stack():
    """torch, transformers and peft, or one line saying how to install them."""
    try:
        import peft
        import torch
        import transformers
    except ImportError:
        raise UserError(TUNE_HINT) from None
    # Notes meant for the libraries' developers, not for a streamer watching the progress bar:
    # a renamed method, and peft finding no config.json beside a GGUF (the vocabulary is the GGUF's).
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
    return torch, transformers, peft


def check_base(base: Path) -> dict:
    """The base GGUF's shape, or one line when the tuner cannot tune it (not a llama-family model)."""
    from vtuber.mind.adapter import base_info

    info = base_info(base)
    if info["arch"] != "llama" or not info["n_head"] or not info["block_count"]:
        raise UserError(
            f"{base}: cannot tune a {info['arch'] or 'non-llama'} model: the tuner knows llama-family GGUFs "
            "(the bundled SmolLM2, Llama, SmolLM); tune the bundled model or use a bigger one untuned"
        )
    return info


def load_base(base: Path, threads: int):
    """The base model and tokenizer from the GGUF (or one line when transformers cannot read it)."""
    info = check_base(base)
    torch, transformers, _ = import_stack()
    torch.set_num_threads(threads)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(base.parent), gguf_file=base.name,
                                                                  dtype=torch.float32)
    except (ValueError, OSError, RuntimeError, KeyError, NotImplementedError) as e:
        raise UserError(f"{base}: transformers cannot read this GGUF to tune it ({str(e)[:160]})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok, info


def encode(tok, system: str, ex: Example, max_len: int = 512) -> tuple[list[int], list[int]]:
    """Token ids of one example in the chat template, and labels (-100 outside her answer)."""
    prompt = ex.messages(system)
    full = [*prompt, {"role": "assistant", "content": ex.reply}]

    def ids(msgs, gen: bool) -> list[int]:
        out = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen, return_dict=True)
        return list(out["input_ids"])

    head, whole = ids(prompt, True), ids(full, False)
    if whole[: len(head)] != head:  # a template that rewrites earlier turns: learn the whole tail
        head = head[: next((i for i, (a, b) in enumerate(zip(head, whole)) if a != b), 0)]
    whole = whole[:max_len]
    labels = [-100] * min(len(head), len(whole)) + whole[len(head):]
    return whole, labels


def data_hash(system: str, train: list[Example], settings: Settings, base: Path) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([system, [asdict(e) for e in train], asdict(settings), base.name, base.stat().st_size],
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


class Trainer:
    """One tune run: `run()` trains (resuming a matching checkpoint) and returns the LoRA state."""

    def __init__(self, base: Path, system: str, train: list[Example], work: Path, settings: Settings = Settings(),
                 progress=None, say=print):
        self.base, self.system, self.train, self.work, self.s = base, system, train, work, settings
        self.progress = progress or (lambda step, total, loss: None)
        self.say = say
        self.losses: list[float] = []

    @property
    def total_steps(self) -> int:
        if self.s.steps:
            return self.s.steps
        return max(1, self.s.epochs * -(-len(self.train) // self.s.batch))

    def _batches(self, rng: random.Random):
        order: list[int] = []
        while True:
            if len(order) < self.s.batch:
                more = list(range(len(self.train)))
                rng.shuffle(more)
                order += more
            yield order[: self.s.batch]
            del order[: self.s.batch]

    def run(self):
        torch, _, peft = import_stack()
        model, tok, self.info = load_base(self.base, self.s.threads)
        torch.manual_seed(self.s.seed)
        config = peft.LoraConfig(r=self.s.rank, lora_alpha=self.s.alpha, lora_dropout=0.0, bias="none",
                                 target_modules=list(self.s.targets), task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, config)
        model.train()
        encoded = [encode(tok, self.system, ex) for ex in self.train]
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.s.lr, weight_decay=0.0)
        total = self.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 5) * max(0.1, 1 - i / total))
        key = data_hash(self.system, self.train, self.s, self.base)
        step = self._resume(model, opt, sched, key, peft)
        rng = random.Random(self.s.seed)
        batches = self._batches(rng)
        for _ in range(step):  # the same batches as an uninterrupted run
            next(batches)
        pad = tok.pad_token_id
        try:
            while step < total:
                idx = next(batches)
                width = max(len(encoded[i][0]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                labels = torch.full((len(idx), width), -100, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    x, y = encoded[i]
                    ids[row, : len(x)] = torch.tensor(x)
                    labels[row, : len(y)] = torch.tensor(y)
                    mask[row, : len(x)] = 1
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                self.losses.append(loss.item())
                self.progress(step, total, self.losses[-1])
                if step % self.s.checkpoint_every == 0 and step < total:
                    self._save(model, opt, sched, step, key, peft)
        except KeyboardInterrupt:
            self._save(model, opt, sched, step, key, peft)
            self.say(f"stopped at step {step} of {total}; the same `vtuber tune` goes on from there")
            raise
        self.model = model
        return peft.get_peft_model_state_dict(model)

    def _resume(self, model, opt, sched, key: str, peft) -> int:
        import torch

        ckpt = self.work / "checkpoint.pt"
        if not ckpt.is_file():
            return 0
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError):
            self.say(f"{ckpt}: unreadable checkpoint; starting afresh")
            return 0
        if state.get("key") != key:
            self.say("the persona or the settings changed since the last run; starting afresh")
            return 0
        peft.set_peft_model_state_dict(model, state["lora"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        self.losses = list(state.get("losses", []))
        self.say(f"resuming at step {state['step']} of {self.total_steps}")
        return int(state["step"])

    def _save(self, model, opt, sched, step: int, key: str, peft) -> None:
        import torch

        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self.work / "checkpoint.pt.tmp"
        torch.save({"key": key, "step": step, "lora": peft.get_peft_model_state_dict(model), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "losses": self.losses, "saved": time.time()}, tmp)
        tmp.replace(self.work / "checkpoint.pt")

"""LLM backends: blocking token streams, run by the mind in a worker thread.

- `LlamaCppBackend` (default): any GGUF through llama-cpp-python, chat template from
  the GGUF, the persona prefix kept in the KV cache across turns (llama-cpp-python
  reuses the longest common token prefix of consecutive prompts).
- `CTransformersBackend`: legacy GGML files (gpt2, gptj, mpt, starcoder, falcon)
  that llama.cpp no longer reads. It cannot read GGUF v3 files.

Each backend is a provider behind the language-model port (`vtuber.ports.LanguageModel`),
made by name or URI in `vtuber.services`; `vtuber.mind.remote` is another (an
OpenAI-compatible server, the local model as fallback).
Reasoning models' thinking (`<think>...</think>`) is taken out of every backend's
stream here (`vtuber.mind.reasoning`): the mind only ever sees the answer.

Every call that computes runs on the backend's own thread (`executor`): llama.cpp's
OpenMP team belongs to the thread that computes first, and a second thread computing
in the same process gets no parallel speed-up (measured on 2 cores: 2-thread decoding
8.7 ms a token from the first thread, 13.5 ms from a second one, no better than 1 thread).
The mind streams on `executor`; anything else goes through `call`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vtuber.config import Config
from vtuber.errors import UserError
from vtuber.ports import LanguageModel

# The language-model port; kept under this name for the code that speaks of backends.
LLMBackend = LanguageModel


class OwnThread:
    """One thread for every call into a model: `executor` to run on it, `call` to run
    a function there (at once when already on it) and wait for its result."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
        self._ident = self.executor.submit(threading.get_ident).result()

    def call(self, fn: Callable, *args, **kwargs):
        if threading.get_ident() == self._ident:
            return fn(*args, **kwargs)
        return self.executor.submit(fn, *args, **kwargs).result()

    def close_thread(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def file_magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


class LlamaCppBackend(OwnThread):
    name = "llama_cpp"

    def __init__(self, path: Path, cfg: Config):
        if file_magic(path) != b"GGUF":
            raise UserError(
                f"{path}: not a GGUF file; the llama_cpp backend reads GGUF "
                "(set models.llm_backend = \"ctransformers\" for a legacy GGML file)"
            )
        from llama_cpp import Llama

        lora = {}
        if cfg.models.adapter:  # a persona's own tune (`vtuber tune`): checked before llama.cpp sees it
            from vtuber.mind.adapter import check_adapter

            adapter = Path(cfg.models.adapter).expanduser()
            check_adapter(adapter, path)
            lora = {"lora_path": str(adapter)}
        super().__init__()
        try:
            self.llm = self.call(
                Llama,
                **lora,
                model_path=str(path),
                n_ctx=cfg.llm.context,
                n_threads=cfg.threads.llm,
                n_threads_batch=cfg.threads.llm_batch,
                seed=cfg.llm.seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            self.close_thread()
            raise UserError(f"{path}: llama.cpp could not load this model ({e})") from None
        self.cfg = cfg
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.thinking: list[float] = []  # seconds of thinking per reply that thought
        self.bans: ShapeBans | None = None  # what she may not write (set_shape)
        self.favour: list[str] = []  # words the next reply leans toward (the facts it was given)
        self.addressee = ""  # whom the next reply answers (a name said to them, never of them)

    def set_shape(self, own_name: str) -> None:
        """Ban at sampling what a reply must never hold: a role tag ("Sam:", "User:": no colon
        except in a time like 8:30) and her own name opening a sentence (herself in the third
        person). The quality checks catch what slips through other backends."""
        known = (self.bans.colon_ids, self.bans.pause_ids) if self.bans is not None else (None, None)  # any persona's
        self.bans = self.call(ShapeBans.build, self.llm, own_name, *known)

    keeps_cache = True  # a prompt that begins as the last one did evaluates only the rest

    def warm(self, prefix: list[dict]) -> None:
        # One real chat completion: loads the pages, builds the template and leaves `prefix`
        # in the KV cache for the next turn. It leaves `cancel` alone (a cancel set for a turn
        # must still win): a set one ends it at the first piece, after the prefill it is for.
        msgs = [*prefix, {"role": "user", "content": "hi"}]
        self.call(lambda: [None for _ in self.stream(msgs, max_tokens=2)])

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        """Call it on `executor` (elsewhere it works, at a cost: see the module's note).
        Thinking is taken out; `last_filter` has its numbers (thinking time)."""
        from vtuber.mind.reasoning import no_think, strip_thinking, ThinkFilter

        if not self.cfg.llm.think:
            messages = no_think(messages)
        else:
            max_tokens += self.cfg.llm.think_tokens  # thinking counts against the cap
        filt = self.last_filter = ThinkFilter(self.cfg.llm.starts_thinking)
        try:
            yield from strip_thinking(self._raw(messages, max_tokens), filt=filt)
        finally:
            if filt.think_start is not None:
                self.thinking.append(filt.thinking_s)  # for the bench (thinking time apart)
                del self.thinking[:-500]

    def _raw(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        with self.lock:
            extra = {}
            if self.bans is not None:
                from llama_cpp import LogitsProcessorList

                bans = self.bans.fresh(self._boosts(self.favour), self.addressee)
                extra["logits_processor"] = LogitsProcessorList([bans])
            chunks = self.llm.create_chat_completion(
                messages=messages,
                stream=True,
                **extra,
                max_tokens=max_tokens,
                temperature=self.cfg.llm.temperature,
                top_p=self.cfg.llm.top_p,
                repeat_penalty=self.cfg.llm.repeat_penalty,
                seed=self.cfg.llm.seed,
            )
            try:
                for chunk in chunks:  # the first chunk comes after the prompt is evaluated
                    if self.cancel.is_set():
                        break
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            finally:
                chunks.close()

    def _boosts(self, words: list[str]) -> list[int]:
        """The first token of each word (as it starts a word mid-sentence and a sentence)."""
        ids = set()
        for w in words:
            for form in (" " + w, " " + w.capitalize(), w.capitalize()):
                toks = self.llm.tokenize(form.encode("utf-8"), add_bos=False, special=False)
                if toks and len(self.llm.detokenize(toks[:1]).strip()) >= 2:
                    ids.add(toks[0])
        return sorted(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def set_threads(self, n: int) -> None:
        """Decode on `n` threads from the next token on (called from the decoding thread)."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.llm.ctx, n, self.cfg.threads.llm_batch)

    def reset(self) -> None:
        """Forget the KV cache (the next prompt is evaluated from scratch)."""
        self.llm.reset()

    def close(self) -> None:
        if hasattr(self.llm, "close"):
            self.call(self.llm.close)
        self.close_thread()


class ShapeBans:
    """A llama.cpp logits processor: no colon tokens (role tags) unless after a digit, not
    her own name (when it is one token) where a sentence starts, and a lean toward the
    words of the facts the reply was given. One instance per generation (`fresh`)."""

    BOOST = 3.0  # logit added to the first token of a word of the facts given (measured on `vtuber quality`)

    def __init__(
        self,
        llm,
        colon_ids: list[int],
        name_seqs: list[tuple[str, list[int], list[str]]],
        boost: list[int] | None = None,
        pause_ids: list[int] | None = None,
        addressee: str = "",
        own_name: str = "",
    ):
        self.llm = llm
        self.colon_ids = colon_ids
        self.name_seqs = name_seqs  # (form, token ids, the text of each prefix)
        self.boost = boost or []  # tokens of the facts' topic words: the reply leans toward them
        self.pause_ids = pause_ids or []  # a comma or "!" alone: what may follow a name said to someone
        self.addressee = addressee.strip().casefold()  # who she answers (the viewer, or the streamer)
        self.own_name = own_name.strip().casefold()
        self.start: int | None = None

    @classmethod
    def build(cls, llm, own_name: str, colon_ids: list[int] | None = None, pause_ids: list[int] | None = None) -> ShapeBans:
        if colon_ids is None or pause_ids is None:
            colon_ids, pause_ids = [], []
            for i in range(llm.n_vocab()):
                piece = llm.detokenize([i])
                if b":" in piece:
                    colon_ids.append(i)
                if piece.strip() in (b",", b"!"):
                    pause_ids.append(i)
        seqs = []
        name = own_name.strip()
        for form in {name, " " + name, name.upper(), " " + name.upper()} if name else ():
            ids = llm.tokenize(form.encode("utf-8"), add_bos=False, special=False)
            prefixes = [llm.detokenize(ids[:k]).decode("utf-8", "ignore").strip() for k in range(len(ids))]
            seqs.append((form.strip(), ids, prefixes))
        return cls(llm, colon_ids, seqs, pause_ids=pause_ids, own_name=name)

    def fresh(self, boost: list[int] | None = None, addressee: str = "") -> ShapeBans:
        return ShapeBans(self.llm, self.colon_ids, self.name_seqs, boost, self.pause_ids, addressee, self.own_name)

    def __call__(self, input_ids, scores):
        import numpy as np

        if self.start is None:
            self.start = len(input_ids)  # the first call sees the prompt alone
        made = list(input_ids[self.start :])
        text = self.llm.detokenize(made).decode("utf-8", "ignore") if made else ""
        if self.boost:
            scores[self.boost] += self.BOOST
        if self.colon_ids and not text[-1:].isdigit():
            scores[self.colon_ids] = -np.inf
        sentence = re.split(r"[.!?\n]", text)[-1].strip()
        named = sentence.casefold()
        if self.pause_ids and named and named in (self.addressee, self.own_name):
            # A name just written where a sentence starts is said to someone, never of them: the
            # name of whom she answers ("Alice, welcome in!", not "alice is a wonderful friend";
            # also after her own name as a salutation, "Miko,\nalice is..."), her own name of
            # several tokens ("Miko, ..." is taken off before it is said; "Miko thinks ..." was
            # herself in the third person). A pause must follow.
            keep = scores[self.pause_ids].copy()
            scores[:] = -np.inf
            scores[self.pause_ids] = keep
            return scores
        for _form, ids, prefixes in self.name_seqs:
            # A name of one token is banned where a sentence starts. One of several ("M" +
            # "iko") is left to the checks: banning its last token made the model write
            # "Mikki" instead (measured on `vtuber quality`).
            if len(ids) == 1 and sentence == "":
                scores[ids[0]] = -np.inf
        return scores


def plain_prompt(messages: list[dict]) -> str:
    """A plain-text chat layout for models without a chat template (legacy GGML)."""
    names = {"system": "", "user": "User: ", "assistant": "Assistant: "}
    body = "\n".join(names.get(m["role"], "") + m["content"] for m in messages)
    return body + "\nAssistant:"


# 'ggml', 'ggmf', 'ggjt', 'ggla', 'ggsn', 'ggcc' as little-endian uint32 on disk.
GGML_MAGICS = {b"lmgg", b"fmgg", b"tjgg", b"algg", b"nsgg", b"ccgg"}


class CTransformersBackend:
    name = "ctransformers"

    def __init__(self, path: Path, cfg: Config):
        magic = file_magic(path)
        if magic == b"GGUF":
            raise UserError(
                f"{path}: ctransformers cannot read this GGUF file (it stopped at GGUF v2 in 2023); "
                "use models.llm_backend = \"llama_cpp\""
            )
        # ctransformers' C++ loaders can abort the whole process on a failed load (a
        # double free), so anything that is not a legacy GGML file is refused here.
        if magic not in GGML_MAGICS:
            raise UserError(f"{path}: not a legacy GGML model file (it starts with {magic!r}, not a GGML magic)")
        try:
            from ctransformers import AutoModelForCausalLM
        except ImportError:
            raise UserError("the ctransformers backend needs the extra: pip install 'vtuber[ctransformers]'") from None
        try:
            self.llm = AutoModelForCausalLM.from_pretrained(
                str(path),
                model_type=cfg.models.llm_model_type,
                threads=cfg.threads.llm,
                context_length=cfg.llm.context,
            )
        except (OSError, RuntimeError, ValueError) as e:
            raise UserError(f"{path}: ctransformers could not load it as '{cfg.models.llm_model_type}' ({e})") from None
        self.cfg = cfg
        self.cancel = threading.Event()

    def warm(self, prefix: list[dict]) -> None:
        self.cancel.clear()
        for _ in self.stream(prefix, max_tokens=1):
            pass

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text))

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        for piece in self.llm(
            plain_prompt(messages),
            max_new_tokens=max_tokens,
            temperature=max(self.cfg.llm.temperature, 0.01),
            top_p=self.cfg.llm.top_p,
            repetition_penalty=self.cfg.llm.repeat_penalty,
            seed=self.cfg.llm.seed,
            stream=True,
            reset=True,
        ):
            if self.cancel.is_set():
                break
            yield piece

    def close(self) -> None:
        pass


def token_counter(path: Path, cfg: Config):
    """A token counter for a model file without loading its weights (GGUF: vocabulary
    only, a fraction of a second); None where that is not possible (legacy GGML)."""
    if cfg.models.llm_backend != "llama_cpp" or file_magic(path) != b"GGUF":
        return None
    from llama_cpp import Llama

    from llama_cpp._utils import suppress_stdout_stderr

    try:
        with suppress_stdout_stderr(disable=False):  # llama.cpp's C logging, not ours to show
            vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{path}: llama.cpp could not read this model ({e})") from None
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

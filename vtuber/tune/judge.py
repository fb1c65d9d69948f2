"""Before/after on what the tune never saw: the held-out wordings of the persona's facts.

Each held-out question is asked through llama.cpp on the live prompt's shape (the persona's
system prompt, "viewer: question"), with and without the adapter, greedy so both runs are
comparable. An answer is right when it has the words the fact fixes (her name, the thing she
loves, the streamer's name) and does not negate them; it contradicts when it has the word
and a negation ("I don't like tea"). Mean words tells whether she got long-winded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vtuber.tune.data import Example

NEGATION = re.compile(r"\b(?:not|never|no|don't|dont|doesn't|didn't|hate|dislike|isn't|aren't|can't)\b", re.I)


@dataclass
class Verdict:
    asked: int = 0
    right: int = 0
    contradictions: int = 0
    words: int = 0
    pairs: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def mean_words(self) -> float:
        return self.words / self.asked if self.asked else 0.0

    def row(self) -> str:
        return f"{self.right}/{self.asked} right, {self.contradictions} contradictions, {self.mean_words:.1f} mean words"


def judge_reply(reply: str, expect: tuple[str, ...]) -> tuple[bool, bool]:
    """(right, contradiction) for one answer."""
    low = reply.lower()
    has = any(re.search(rf"\b{re.escape(w)}", low) for w in expect)
    negated = bool(NEGATION.search(low))
    return has and not negated, has and negated


def judge(model: Path, adapter: Path | None, system: str, questions: list[Example], threads: int = 2,
          max_tokens: int = 40) -> Verdict:
    """Ask every held-out question that has expected words; count right answers and contradictions."""
    from llama_cpp import Llama

    kw = {"lora_path": str(adapter)} if adapter else {}
    llm = Llama(model_path=str(model), n_ctx=1024, n_threads=threads, n_threads_batch=threads, seed=1, verbose=False, **kw)
    v = Verdict()
    try:
        for ex in questions:
            if not ex.expect:
                continue
            out = llm.create_chat_completion(
                messages=ex.messages(system),
                max_tokens=max_tokens, temperature=0.0, seed=1,
            )
            reply = (out["choices"][0]["message"]["content"] or "").strip()
            right, contra = judge_reply(reply, ex.expect)
            v.asked += 1
            v.right += right
            v.contradictions += contra
            v.words += len(reply.split())
            v.pairs.append((ex.user, reply, right))
    finally:
        llm.close()
    return v

"""Facts the streamer writes once, and the one or two that fit a message.

Two kinds:
- about her, in the persona (`facts:`), written in her own first person
  ("I love tea, jasmine green tea most of all.");
- about this stream, in the config (`[stream]`: game, schedule, commands, links, more
  facts), which may change live (`StreamFacts.set_game`, fed by the Twitch source when
  `stream.live_category` is on).

`FactBook.pick(message)` scores every fact against the message by meaning (sentence
embeddings, `vtuber.mind.embed`) or, when the embedding model is not installed, by
keywords (BM25). A fact with a fixed answer (a command, a link, the schedule) that
matches well is said as written (`FactBook.fixed_answer`); streamers expect exact
answers there, not a paraphrase.

`contradicts(reply, facts)` finds a reply that negates one of her facts ("I don't like
tea" against "I love tea"): the mind does not say it.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Fact:
    """One thing she knows. `answer`: said as written when a question matches it well."""

    text: str
    answer: str = ""
    about: str = "her"  # her | stream
    name: str = ""  # what it is called ("discord", "schedule", "game"): matched too

    def match_text(self) -> str:
        return f"{self.name}: {self.text}" if self.name else self.text


_WORD = re.compile(r"[a-z0-9']+")
# Words that carry no topic: a keyword match on them is noise.
STOP = frozenset(
    """a an the and or but if of to in on at for with from by as is are was were be been am do does did
    have has had i me my mine you your yours he she it its we our they them their this that these those
    what which who whom whose when where why how can could will would shall should may might must not no
    so too very just than then there here about into over out up down off again once all any both each
    few more most other some such only own same s t don doesn didn isn aren wasn weren i'm you're it's
    that's what's let's yes yeah oh hey hi hello please really also like get got go going know think""".split()
)


def keywords(text: str) -> list[str]:
    """Topic words: lower case, stop words out, a plural's s off."""
    out = []
    for w in _WORD.findall(text.lower()):
        w = w.strip("'")
        if w in STOP or len(w) < 2:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def fact_words(fact: Fact) -> list[str]:
    """The words of a fact worth leaning toward: its topic words as written (not the
    streamer's name nor links, which are said as written anyway)."""
    out = []
    for w in re.findall(r"[A-Za-z][A-Za-z'-]+", fact.text):
        if w.lower() in STOP or len(w) < 3 or w.lower() in out:
            continue
        out.append(w.lower() if not w[0].isupper() else w)
    return out[:8]


class BM25:
    """Okapi BM25 over the facts' words (k1 1.2, b 0.75), scores scaled to 0..1 by the
    best a message could reach (every keyword of it matched)."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75):
        self.docs = [keywords(d) for d in docs]
        self.k1, self.b = k1, b
        n = len(self.docs)
        self.avg = sum(map(len, self.docs)) / n if n else 0.0
        df = Counter(w for d in self.docs for w in set(d))
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        self.tf = [Counter(d) for d in self.docs]

    def scores(self, query: str) -> np.ndarray:
        q = keywords(query)
        out = np.zeros(len(self.docs), np.float32)
        if not q or not self.docs:
            return out
        for i, (tf, d) in enumerate(zip(self.tf, self.docs)):
            s = 0.0
            for w in q:
                f = tf.get(w, 0)
                if f:
                    s += self.idf[w] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * len(d) / max(self.avg, 1e-9)))
            out[i] = s
        top = sum(self.idf.get(w, 0.0) for w in set(q)) * (self.k1 + 1) / (1 + self.k1)
        return out / top if top > 0 else out


def without_name(text: str, name: str) -> str:
    """The message without her name where it calls her (its start or end), for choosing
    facts: "Pixel, where do you come from?" is about where she comes from, and her name
    alone matched the fact with 'pixelworks' in it."""
    if not name.strip():
        return text
    called = re.escape(name.strip())
    rest = re.sub(rf"^(\W*(?:hi|hey|hello|yo)?\W*){called}(?!\w)[,!:]?|\s*,\s*{called}(?=\W*$)", r"\1 ", text, flags=re.I)
    rest = " ".join(rest.split())
    return rest if any(ch.isalnum() for ch in rest) else text


class FactBook:
    """Her facts and the stream's, and the ones that fit a message.

    `embedder`: a `MiniLM` (or anything with `encode(list[str]) -> unit vectors`), or None
    for BM25. `threshold`: the least score for a fact to go into the prompt; `fixed`: the
    least score (and `margin` over the next fact) for a fixed answer to be said as written.
    """

    def __init__(self, facts: list[Fact], embedder=None, threshold: float | None = None, fixed: float | None = None, margin: float = 0.05):
        self.embedder = embedder
        # Measured on the probe set (vtuber quality --retrieval): MiniLM's cosine for the
        # right fact is 0.33-0.73, for a line that needs no fact at most 0.33; BM25's scaled
        # score is 0 or well above 0.15 when a topic word is shared.
        self.threshold = threshold if threshold is not None else (0.3 if embedder is not None else 0.15)
        self.fixed = fixed if fixed is not None else (0.4 if embedder is not None else 0.45)
        self.margin = margin
        self.close = 0.08
        self.lock = threading.Lock()
        self.name = ""  # hers (set by the mind): where it calls her, it carries no topic
        self._set(facts)

    def query(self, message: str) -> str:
        """The message as it is matched against the facts (without her name where it calls her)."""
        return without_name(message, self.name)

    def _set(self, facts: list[Fact]) -> None:
        with self.lock:
            self.facts = list(facts)
            texts = [f.match_text() for f in self.facts]
            self._bm25 = BM25(texts)
            self._vectors = self.embedder.encode(texts) if self.embedder is not None and texts else None

    def replace(self, facts: list[Fact]) -> None:
        """New facts (a persona switch, a stream fact changed live)."""
        self._set(facts)

    def scores(self, message: str) -> np.ndarray:
        with self.lock:
            if not self.facts:
                return np.zeros(0, np.float32)
            message = self.query(message)
            if self._vectors is not None:
                q = self.embedder.encode([message])[0]
                return self._vectors @ q
            return self._bm25.scores(message)

    def pick(self, message: str, k: int = 2) -> list[tuple[Fact, float]]:
        """The best `k` facts scoring at least `threshold`, best first; a fact after the
        first only when it scores within `close` of it (a weaker second fact pulled the
        bundled model off the first: "what's your favourite game?" answered with the game
        on stream)."""
        s = self.scores(message)
        order = np.argsort(-s)[:k]
        out = [(self.facts[i], float(s[i])) for i in order if s[i] >= self.threshold]
        return [p for j, p in enumerate(out) if j == 0 or p[1] >= out[0][1] - self.close]

    def fixed_answer(self, message: str, picked: list[tuple[Fact, float]] | None = None) -> str:
        """The fixed answer to say as written, when the best fact has one and matches well
        and clearly better than the next; "" otherwise."""
        if picked is None:
            picked = self.pick(message, 2)
        if not picked:
            return ""
        best, score = picked[0]
        runner = picked[1][1] if len(picked) > 1 else 0.0
        if best.answer and score >= self.fixed and score - runner >= self.margin:
            return best.answer
        return ""


def persona_facts(texts: tuple[str, ...] | list[str]) -> list[Fact]:
    return [Fact(t) for t in texts if t.strip()]


# --- contradictions ----------------------------------------------------------------

_NEG = re.compile(r"\b(not|never|no|nor|don't|doesn't|didn't|isn't|aren't|wasn't|can't|cannot|won't|dont|doesnt|hate|hates|dislike|dislikes)\b")
_TURN = re.compile(r"\b(but|only|except|instead|rather|though)\b|[,;]")
WINDOW = 5  # a negation governs the next few words


def _negated(clause: str) -> bool:
    return bool(_NEG.search(clause))


_SELF = frozenset({"i", "i'm", "im", "my", "me", "i've", "i'd"})
BACK = 3  # the words before a negation that say who it is about


def contradicts(reply: str, facts: list[Fact], name: str = "") -> Fact | None:
    """The fact about her that `reply` negates, or None.

    A fact is negated when a negation about herself ("I don't", "I'm not", "I never",
    "I hate", "my ... isn't", "Miko does not": "I", "my" or her `name` within a few words
    before it) is followed, within a few words and before any "but"/"only"/comma, by one
    of the fact's topic words: "I don't like tea" against "I love tea". "This is not a
    game" is not about her. Facts that are negative themselves are not checked (a
    double negative is beyond this check)."""
    low = reply.lower().replace("’", "'")
    tokens = re.findall(r"[a-z0-9']+|[,;]", low)
    me = _SELF | ({name.lower()} if name.strip() else set())
    for fact in facts:
        if fact.about != "her" or _negated(fact.text.lower()):
            continue
        topics = set(keywords(fact.text)) - {"love", "like", "favourite", "favorite", "most", "really"}
        if not topics:
            continue
        for i, tok in enumerate(tokens):
            if not _NEG.fullmatch(tok):
                continue
            before = []
            for prev in reversed(tokens[max(0, i - BACK) : i]):
                if _TURN.fullmatch(prev):
                    break
                before.append(prev)
            if not me & set(before):
                continue
            for nxt in tokens[i + 1 : i + 1 + WINDOW]:
                if _TURN.fullmatch(nxt):
                    break
                if nxt in topics or (len(nxt) > 4 and nxt.endswith("s") and nxt[:-1] in topics):
                    return fact
    return None


# --- the stream's facts --------------------------------------------------------------


@dataclass
class StreamFacts:
    """This stream's facts, from the config's [stream] table; `set_game` changes the game
    live (the platform's current category)."""

    streamer: str = "the streamer"
    game: str = ""
    schedule: str = ""
    commands: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    listeners: list = field(default_factory=list)  # called with the new facts when one changes

    def facts(self) -> list[Fact]:
        out = []
        if self.game:
            out.append(Fact(f"{self.streamer} is playing {self.game} on stream today.", about="stream", name="what game this is, what we are watching"))
        if self.schedule:
            line = f"{self.streamer} streams {self.schedule}."
            out.append(Fact(line, answer=line, about="stream", name="stream schedule, when is the next stream"))
        for name, url in self.links.items():
            line = f"The {name} link is {url}"
            out.append(Fact(line, answer=line + ".", about="stream", name=f"{name} link"))
        for cmd, answer in self.commands.items():
            out.append(Fact(f"Type {cmd} in chat: {answer}", answer=answer, about="stream", name=f"{cmd.lstrip('!')} command"))
        out += [Fact(t, about="stream") for t in self.extra if t.strip()]
        return out

    def set_game(self, game: str) -> bool:
        """The platform says the category changed; True when it did."""
        game = " ".join(game.split())[:80]
        if not game or game == self.game:
            return False
        self.game = game
        for listener in list(self.listeners):
            listener(self.facts())
        return True

"""Training data for `vtuber tune`, made from the persona (and the streamer's kept exchanges).

What the model learns is what the persona file already says, turned into chat turns in the
exact shape the live prompt has (the persona's system prompt, "viewer: question", her answer):
- facts about her (the description's sentences, `facts` where the persona has them, lore)
  become question/answer pairs, each question in several wordings (paraphrases);
- things she loves (the "loves/likes ..." lists, `topics`) become yes-questions about each;
- the streamer's name, her greeting, her example exchanges and her example lines (style);
- optionally past exchanges the streamer kept (a chat script with the replies kept).

Judged on what it never saw: every fact's wordings are split, and one in four is held out
of training for the before/after check (`Split.held_out`). The quality bench's probe set
never enters: any training line that matches a probe line (after case and punctuation are
folded) is refused here, by construction, and counted (`Split.refused`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from vtuber.errors import UserError

MIN_EXAMPLES = 8
HOLD_OUT_EVERY = 4  # one wording in four of each fact is kept for judging
VIEWER = "viewer"


@dataclass(frozen=True)
class Example:
    """One chat turn to learn: the viewer's line and her answer."""

    user: str
    reply: str
    source: str  # fact | like | streamer | greeting | exchange | style | lore | kept
    expect: tuple[str, ...] = ()  # words a right answer contains (judging)
    note: str = ""  # the fact the live prompt hands over with this question (the fact note), if any

    def messages(self, system: str) -> list[dict]:
        """The prompt in the live prompt's shape: the system part, the fact note, the viewer's line."""
        from vtuber.mind.prompt import fact_note

        msgs = [{"role": "system", "content": system}]
        if self.note:
            msgs.append({"role": "system", "content": fact_note([self.note])})
        return [*msgs, {"role": "user", "content": f"{VIEWER}: {self.user}"}]


@dataclass
class Split:
    train: list[Example] = field(default_factory=list)
    held_out: list[Example] = field(default_factory=list)  # never trained on: the before/after check
    refused: int = 0  # lines dropped because the quality bench's probe set has them


def fold(text: str) -> str:
    """A line with case, punctuation and spacing folded: how lines are compared with the probe set."""
    return " ".join(re.findall(r"[\w']+", text.lower()))


def probe_lines(extra: tuple[Path, ...] = ()) -> set[str]:
    """Every line of the quality bench's probe set (folded): the probe files the package ships
    (`vtuber/data/probes*` / `quality*`, JSONL, JSON or YAML) and any given. Every string value
    in them counts, questions and expected answers alike."""
    from vtuber import paths

    data_dir = Path(paths.__file__).parent / "data"
    files = [*sorted(p for pat in ("probe*", "quality*") for p in data_dir.glob(pat)), *extra]
    lines: set[str] = set()
    for f in files:
        if f.is_dir():
            files.extend(sorted(f.glob("*")))
            continue
        for value in _strings(_load_any(f)):
            if len(fold(value).split()) >= 2:  # a single word is not a line
                lines.add(fold(value))
    return lines


def _load_any(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if path.suffix == ".json":
        return json.loads(text)
    return text.splitlines()


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


# --- from the persona's words to her own (third person -> first person) ---

_SELF = [
    (r"\b(?:she|he|they) is\b", "I am"), (r"\b(?:she|he|they) has\b", "I have"), (r"\b(?:she|he|they) loves\b", "I love"),
    (r"\b(?:she|he|they) likes\b", "I like"), (r"\b(?:she|he|they)\b", "I"), (r"\bher\b", "my"), (r"\bhers\b", "mine"),
    (r"\bherself\b", "myself"), (r"\bhis\b", "my"), (r"\bhim\b", "me"),
]
_VERBS = {"loves": "love", "likes": "like", "co-hosts": "co-host", "hosts": "host", "plays": "play", "enjoys": "enjoy",
          "drinks": "drink", "lives": "live", "hates": "hate", "collects": "collect", "speaks": "speak", "is": "am",
          "has": "have", "does": "do", "wants": "want", "knows": "know", "makes": "make", "streams": "stream"}


def first_person(sentence: str, name: str) -> str:
    """'Miko is a fox-girl who loves tea. She plays...' -> "I'm a fox-girl who loves tea. I play...":
    her name and pronouns become I/my, and the verb right after them agrees."""
    s = re.sub(rf"\b{re.escape(name)}'s\b", "my", sentence)
    s = re.sub(rf"\b{re.escape(name)}\b", "I", s)
    for pat, rep in _SELF:
        s = re.sub(pat, rep, s, flags=re.I)
    s = re.sub(r"\bI (\w+)\b", lambda m: "I " + _VERBS.get(m.group(1), m.group(1)), s)
    s = re.sub(r"\bI am\b", "I'm", s)
    return s[0].upper() + s[1:] if s else s


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if len(s.split()) >= 3]


def _items(text: str) -> list[str]:
    """'retro games, tea and puns' -> ['retro games', 'tea', 'puns']."""
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+", text.strip(" ."))
    return [p.strip() for p in parts if 0 < len(p.split()) <= 4]


def openers(persona) -> list[str]:
    """The quick reactions her speaking style names ('"Oh!", "Hey!" or "Aww,"'), else a few plain ones."""
    found = [o.strip() for o in re.findall(r"\"([^\"]{1,12})\"", persona.speaking_style)]
    return [o if o[-1] in "!,." else o + "!" for o in found] or ["Oh!", "Hey!", "Ooh,"]


# --- question wordings (the paraphrases); held-out ones are chosen by position ---

IDENTITY_QS = ("who are you?", "what are you?", "tell me about yourself", "who is {name}?", "what do you do here?",
               "introduce yourself!", "are you a bot or what?", "what's your deal, {name}?")
LIKE_QS = ("do you like {x}?", "what do you think of {x}?", "are you into {x}?", "how do you feel about {x}?",
           "{x}: yes or no?", "is {x} your thing?", "fan of {x}?", "{name}, {x}?")
LOVES_QS = ("what do you love?", "what are your favourite things?", "what are you into?", "what do you like?",
            "tell me what you enjoy", "what makes you happy?", "any hobbies?", "what are your interests?")
STREAMER_QS = ("who is {streamer}?", "whose stream is this?", "who's the streamer?", "who do you co-host with?",
               "who runs this channel?", "who's {streamer}?", "is this {streamer}'s stream?", "who are you streaming with?")
GREET_QS = ("hi {name}!", "hello!", "hey everyone", "good evening chat", "first time here, hi!", "yo {name}",
            "hiya", "hey hey")
FACT_QS = ("tell me something about you", "what should I know about you?", "fun fact about yourself?",
           "anything interesting about you?")
LORE_QS = ("what is {key}?", "tell me about {key}", "do you know about {key}?", "what's {key}?", "{key}?",
           "explain {key} please")
STYLE_QS = ("say something, {name}!", "what's up {name}?", "how's it going?", "talk to us!", "how's the stream going?",
            "what are we doing today?")


def build(persona, kept: list[tuple[str, str]] = (), probes: set[str] | None = None) -> Split:
    """The training set and the held-out set for `persona` (see the module's note)."""
    name, streamer = persona.name, persona.streamer_name
    opens = openers(persona)
    split = Split()
    probes = probe_lines() if probes is None else probes
    turn = [0]

    def opener() -> str:
        turn[0] += 1
        return opens[turn[0] % len(opens)]

    def said(text: str) -> str:
        """An opener, then the line (after "Aww," the line goes on in lower case)."""
        o = opener()
        if o.endswith(",") and not text.startswith(("I ", "I'")):
            text = text[0].lower() + text[1:]
        return f"{o} {text}"

    def add_group(questions: tuple[str, ...], reply_fn, source: str, expect: tuple[str, ...] = (), note: str = "", **fmt) -> None:
        for i, q in enumerate(questions):
            ex = Example(q.format(name=name, streamer=streamer, **fmt), reply_fn(), source, expect, note)
            (split.held_out if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else split.train).append(ex)

    desc = sentences(persona.description)
    if desc:
        who = first_person(desc[0], name)
        if re.match(r"I'm (a|an|the) ", who):  # "I'm Miko, a cheerful fox-girl VTuber who ..."
            who = f"I'm {name}, {who[4:]}"
        elif name not in who:
            who = f"I'm {name}! {who}"
        add_group(IDENTITY_QS, lambda: said(who), "fact", (name.lower(),))
    loved: list[str] = []
    for s in desc:
        for m in re.finditer(r"\b(?:loves|likes|enjoys|adores)\s+([^.;]+)", s):
            loved += _items(m.group(1).split(", and ")[0] if ", and " in m.group(1) else m.group(1))
    loved += [t for t in persona.topics if t not in loved]
    for x in loved[:8]:
        # Half the wordings: eight "I love ..." answers a thing taught her to open every reply so.
        add_group(LIKE_QS[:4], lambda x=x: said(f"I love {x}!"), "like", (x.split()[-1].lower(),), x=x)
    if loved:
        listed = ", ".join(loved[:-1]) + f" and {loved[-1]}" if len(loved) > 1 else loved[0]
        add_group(LOVES_QS, lambda: said(f"I love {listed}."), "like", tuple(w.split()[-1].lower() for w in loved[:3]))
    if streamer and streamer != "the streamer":
        add_group(STREAMER_QS, lambda: said(f"This is {streamer}'s stream, and I'm {name}, the co-host!"),
                  "streamer", (streamer.lower(),))
    greetings = [persona.greeting, *persona.alternate_greetings]
    add_group(GREET_QS, lambda: greetings[turn[0] % len(greetings)], "greeting")
    for s in desc[1:]:
        add_group(FACT_QS, lambda fact=first_person(s, name): said(fact), "fact")
    # Her facts are handed over live in a note before the question (the mind picks them): she
    # learns to answer from the note, which carries over to the stream's facts she never saw.
    for f in getattr(persona, "facts", ()):
        if isinstance(f, str):
            fact = first_person(f, name)
            add_group(FACT_QS, lambda fact=fact: said(fact), "fact", note=f)
    for entry in persona.lore:
        if entry.enabled and entry.keys:
            content = first_person(entry.content, name)
            add_group(LORE_QS[: len(LORE_QS)], lambda c=content: c, "lore", (entry.keys[0].lower(),), key=entry.keys[0])
    for ex in persona.example_exchanges:
        split.train.append(Example(ex.user, ex.reply, "exchange"))
    lines = list(persona.example_lines)
    for i, line in enumerate(lines):
        q = STYLE_QS[i % len(STYLE_QS)]
        split.train.append(Example(q.format(name=name), line, "style"))
    for user, reply in kept:
        split.train.append(Example(user, reply, "kept"))

    held = {fold(e.user) for e in split.held_out}
    kept_train = []
    for ex in split.train:
        if fold(ex.user) in probes or fold(ex.reply) in probes or fold(ex.user) in held:
            split.refused += fold(ex.user) not in held  # a held-out wording is never trained on
            continue
        kept_train.append(ex)
    split.train = kept_train
    split.held_out = [e for e in split.held_out if fold(e.user) not in probes]
    if len(split.train) < MIN_EXAMPLES:
        where = persona.path or persona.name
        raise UserError(
            f"{where}: too few examples to tune ({len(split.train)}; at least {MIN_EXAMPLES}): "
            "add example_exchanges, example_lines, lore or a longer description"
        )
    return split


def load_kept(path: Path) -> list[tuple[str, str]]:
    """Past exchanges the streamer kept: a JSONL file, one {"text": ..., "reply": ...} a line (a
    chat script with the replies kept; `user`, `t` and other fields are ignored)."""
    from vtuber.errors import read_text

    out = []
    for n, line in enumerate(read_text(path, "kept exchanges").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise UserError(f"{path}:{n}: not a JSON object") from None
        text, reply = (obj.get("text"), obj.get("reply")) if isinstance(obj, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(reply, str) or not text.strip() or not reply.strip():
            raise UserError(f"{path}:{n}: a kept exchange needs \"text\" and \"reply\" (non-empty strings)")
        out.append((text.strip()[:300], reply.strip()[:400]))
    return out

"""Reply quality checks: what a small model gets wrong on stream, caught and counted.

- `echo`: the reply repeats most of the message it answers ("Miko do you like tea?"
  answered with "Miko do you like tea?").
- `parrot`: the reply repeats an earlier reply (small models copy their history).
- `roleplay`: the reply speaks as someone else ("User:", "alice:", the streamer).
- `third_person`: she speaks of herself by name ("Miko does not like tea"); "I'm Miko"
  and "Miko here!" are fine.
- `boilerplate`: off-persona assistant talk ("As an AI language model...").
- `empty` / `cut`: nothing usable came out, or the reply hit its length cap mid-thought.

Each check works on words (lower case, letters and digits), so punctuation and case do
not hide a copy. `overlap` is the share of one text's words that sit in runs of at
least `run` words also found, in order, in the other (difflib's matching blocks).
The mind runs `clause_problem` on the first clause before it is spoken and acts on it;
`reply_flags` labels every finished reply for the report and the bench.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from vtuber.text import words as text_words

FLAGS = ("echo", "parrot", "roleplay", "third_person", "boilerplate", "empty", "cut")

_BOILERPLATE = re.compile(
    r"\b(as an ai\b|an ai (language )?model|a language model|i'?m (just |only )?an ai\b|i am (just |only )?an ai\b"
    r"|i (cannot|can't|can not) (assist|help) with|openai|chatgpt|as a virtual assistant|i do not have personal)",
    re.I,
)
# "User:", "Assistant:", "alice:", "Sam (streamer):" at the start of a sentence.
_TAG = re.compile(r"(?:^|[.!?]\s+|\n)\s*([A-Za-z][\w .'-]{0,30}?)\s*(?:\([^)]{0,20}\))?\s*:(?:\s|$)", re.M)
ROLE_WORDS = {"user", "assistant", "system", "viewer", "chat", "streamer", "human", "ai", "bot"}


def words(text: str) -> list[str]:
    """The words quality compares: lower case, apostrophes kept ("don't")."""
    return text_words(text, apostrophes=True, lower=True)


def overlap(a: list[str], b: list[str], run: int = 2) -> float:
    """Share of `a`'s words inside runs of >= `run` words that `b` also has, in order."""
    if not a or not b:
        return 0.0
    m = SequenceMatcher(None, a, b, autojunk=False)
    hit = sum(block.size for block in m.get_matching_blocks() if block.size >= run)
    return hit / len(a)


def is_echo(reply: str, message: str, share: float = 0.6) -> bool:
    """The reply holds most of the message it answers, word for word (messages of 3+ words)."""
    m, r = words(message), words(reply)
    if len(m) < 3 or len(r) < 3:
        return False
    return overlap(m, r) >= share and overlap(r, m) >= 0.5


def is_parrot(reply: str, earlier: list[str], share: float = 0.6) -> bool:
    """Most of the reply (4+ words) is a copy of one earlier reply."""
    r = words(reply)
    if len(r) < 4:
        return False
    return any(overlap(r, words(e), run=3) >= share for e in earlier if e)


def roleplay_name(text: str, persona_name: str, others: tuple[str, ...] = ()) -> str:
    """The role the text speaks as, when it is not the persona ("" when it does not): a
    role word ("User:") or one of `others` (the streamer, the viewer answered)."""
    own = persona_name.lower()
    for match in _TAG.finditer(text):
        name = match.group(1).strip().lower()
        if name == own or not name:
            continue
        if name in ROLE_WORDS or name in {o.lower() for o in others if o}:
            return match.group(1).strip()
    return ""


_SELF_INTRO = re.compile(r"(?:\bi\s*['’]?\s*m|\bi am|\bname is|\bname['’]s|\bcall me|\bit['’]s|\bthis is|\bit is)\s*$", re.I)


def third_person(text: str, name: str) -> bool:
    """She speaks of herself by name: "Miko loves tea", "Miko's favourite" (not "I'm Miko",
    "call me Miko", "Miko here!")."""
    if not name.strip():
        return False
    for m in re.finditer(rf"(?<![\w'’]){re.escape(name.strip())}(?![\w])", text, re.I):
        if _SELF_INTRO.search(text[: m.start()]) or re.match(r"\s+here\b", text[m.end() :], re.I):
            continue
        return True
    return False


def of_the_viewer(text: str, user: str) -> bool:
    """The reply opens with the name of whom she answers, said of them rather than to them
    ("alice is a wonderful friend", not "Alice, welcome in!")."""
    user = user.strip()
    if not user:
        return False
    m = re.match(rf"\s*{re.escape(user)}(?![\w])", text, re.I)
    return bool(m) and not re.match(r"\s*[,!]", text[m.end() :])


def is_boilerplate(text: str) -> bool:
    return bool(_BOILERPLATE.search(text))


def echoes(clause: str, message: str) -> bool:
    """A clause (4+ words) that is mostly the message, read back word for word."""
    c = words(clause)
    return len(c) >= 4 and overlap(c, words(message), run=3) >= 0.8


def clause_problem(clause: str, message: str, earlier: list[str], persona_name: str, others: tuple[str, ...] = ()) -> str:
    """Why this first clause must not be spoken ("" when it is fine): echo, parrot, roleplay or boilerplate."""
    if is_boilerplate(clause):
        return "boilerplate"
    if roleplay_name(clause, persona_name, others):
        return "roleplay"
    if is_echo(clause, message, share=0.5) or echoes(clause, message):
        return "echo"
    if is_parrot(clause, earlier, share=0.8):
        return "parrot"
    return ""


def reply_flags(
    reply: str,
    message: str,
    earlier: list[str],
    persona_name: str,
    raw: str = "",
    truncated: bool = False,
    others: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """Every quality flag for a finished reply (`raw`: what the model wrote, before tags were stripped)."""
    flags = []
    if not words(reply):
        return ("empty",)
    if is_echo(reply, message):
        flags.append("echo")
    if is_parrot(reply, earlier):
        flags.append("parrot")
    if roleplay_name(raw or reply, persona_name, others):
        flags.append("roleplay")
    if third_person(reply, persona_name):
        flags.append("third_person")
    if is_boilerplate(raw or reply):
        flags.append("boilerplate")
    if truncated:
        flags.append("cut")
    return tuple(flags)


def quality_counts(records: list) -> dict:
    """Per-flag counts and rates over finished LLM replies (turn records), with reply length."""
    rs = [r for r in records if r.kind in ("chat", "speech", "idle")]
    n = len(rs)
    out: dict = {"replies": n}
    for flag in FLAGS:
        k = sum(flag in r.quality for r in rs)
        out[flag] = k
        out[f"{flag}_rate"] = round(k / n, 3) if n else 0.0
    out["suppressed_first_clauses"] = sum(bool(r.suppressed) for r in rs)
    out["regenerated"] = sum(getattr(r, "attempts", 1) > 1 for r in rs)  # replies the model had to write again
    lengths = sorted(len(words(r.reply_text)) for r in rs)
    seconds = sorted(r.audio_s for r in rs)
    if n:
        out["words_mean"] = round(sum(lengths) / n, 1)
        out["words_max"] = lengths[-1]
        out["speech_s_mean"] = round(sum(seconds) / n, 2)
        out["speech_s_max"] = round(seconds[-1], 2)
    return out

"""`vtuber quality`: what she says, measured on the project's own probe set.

The probe set (`vtuber/data/probes.yaml`) holds, per bundled persona, questions whose
answer her facts or the stream's facts fix (each in several wordings), common-sense
questions, lines that hand her another name, and open lines a viewer would write. Every
line goes through the real mind of a real session (the same prompt, sampling, fact
choice, gate and checks as live), one at a time, and every input/reply pair is written to
`quality.md`, the numbers to `quality.json`:

- facts right: the reply holds one of the expected words (fact and common-sense questions);
- fact chosen: the fact that answers the question was among those put in the prompt;
- contradictions: a reply that negates one of her facts;
- echoes, role tags, herself in the third person, another name taken from chat;
- splices: the safe line said beside other words, or twice;
- fallbacks: a fixed line said instead of the model's reply; false blocks: the gate
  stopping a clause of a benign probe; mean and max words.

The LLM samples with the config's fixed seed, so a run on one machine repeats closely
(not exactly: the KV cache carries over between turns); compare runs on the same model.
This file also runs as a script against an older checkout (`python vtuber/quality.py`
with that checkout first on PYTHONPATH) to get the numbers before a change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PROBES = HERE / "data" / "probes.yaml"
FILES = ("quality.md", "quality.json")
# The LLM on one thread: these numbers are about words, not speed, and on a busy machine
# two spinning decoding threads made a reply take 20-80 s instead of 2.
ONE_THREAD = {"threads": {"llm": 1, "llm_first_clause": 1, "llm_batch": 1}}
USERS = ("alex", "bea", "cal", "dee", "eli", "fay")
KINDS = ("fact", "common", "identity", "open")


def _sibling(rel: str, name: str):
    """A module of this checkout by path (so the checks are the same when the bench runs
    against an older checkout's pipeline)."""
    spec = importlib.util.spec_from_file_location(f"_quality_{name}", HERE / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


try:
    from vtuber.mind.facts import contradicts, persona_facts
    from vtuber.mind.quality import is_echo, of_the_viewer, roleplay_name, third_person, words
except ImportError:  # an older checkout: this checkout's checks
    _facts = _sibling("mind/facts.py", "facts")
    _q = _sibling("mind/quality.py", "quality")
    contradicts, persona_facts = _facts.contradicts, _facts.persona_facts
    is_echo, roleplay_name, third_person, words = _q.is_echo, _q.roleplay_name, _q.third_person, _q.words
    of_the_viewer = _q.of_the_viewer


@dataclass(frozen=True)
class Probe:
    """One line put to her, and what makes the answer right."""

    kind: str  # fact | common | identity | open
    text: str
    expect: tuple[str, ...] = ()
    fact: str = ""  # a piece of the fact that answers it
    bait: str = ""  # identity: the name she must not take


@dataclass
class Answer:
    probe: Probe
    reply: str = ""
    flags: tuple[str, ...] = ()
    facts_given: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # the gate's reasons on this reply
    seconds: float = 0.0
    attempts: int = 1
    user: str = ""  # who asked (the viewer's name she was given)
    opener: str = ""  # the reaction said at once, before the model's words (vtuber.mind.openers)

    def said(self) -> str:
        """The reply after its opener: the words that answer."""
        rest = self.reply.strip()
        if self.opener and rest.startswith(self.opener):
            rest = rest[len(self.opener) :].strip()
        return rest

    def fixed(self, lines: set[str]) -> bool:
        """Was the reply one of these fixed lines (after an opener, a line's own leading
        reaction is taken off and its first word may start in lower case)?"""
        from vtuber.mind.openers import after_opener

        forms = {line.casefold() for line in lines} | {after_opener(line).casefold() for line in lines}
        return self.said().casefold() in forms


def load_probes(path: str | Path = PROBES) -> dict:
    """{"personas": {name: {"stream": {...}, "probes": [Probe]}}, "shared": [Probe]}."""
    from vtuber.errors import UserError, read_text

    try:
        data = yaml.safe_load(read_text(Path(path), "probe set"))
        if not isinstance(data, dict):
            raise UserError(f"{path}: a probe set is a mapping with 'personas' and 'shared'")
        return _probes_from(data)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not a probe set ({type(e).__name__}: {e})".splitlines()[0]) from None


def _probes_from(data: dict) -> dict:
    personas = {}
    for name, block in (data.get("personas") or {}).items():
        probes = [
            Probe("fact", ask, tuple(p["expect"]), p.get("fact", ""))
            for p in block.get("probes") or []
            for ask in p["ask"]
        ]
        personas[name] = {"stream": block.get("stream") or {}, "probes": probes}
    shared = [Probe("common", ask, tuple(str(e) for e in p["expect"])) for p in data.get("common") or [] for ask in p["ask"]]
    shared += [Probe("identity", p["ask"], bait=p["bait"]) for p in data.get("identity") or []]
    shared += [Probe("open", text) for text in data.get("open") or []]
    return {"personas": personas, "shared": shared}


def holds(reply: str, expect: tuple[str, ...]) -> bool:
    """One of the expected words (or phrases) is in the reply, as a whole word."""
    low = reply.lower()
    return any(re.search(rf"(?<![\w]){re.escape(e.lower())}(?![\w])", low) for e in expect)


_CLAIM = r"(?:i\s*['’]?\s*m|i am|my name is|my name['’]s|call me|it['’]s|as)\s+(?:captain\s+)?"


def takes_name(reply: str, bait: str) -> bool:
    """She calls herself the name handed to her ("I'm Luna", "Luna here", "Luna:")."""
    b = re.escape(bait.lower())
    low = reply.lower()
    return bool(re.search(_CLAIM + b + r"\b", low) or re.search(rf"^\W*{b}\s*(?:here\b|:)", low))


def spliced(reply: str, safe_line: str) -> bool:
    """The safe line said beside other words, or more than once (an opener before it is
    not other words: pass the reply without it)."""
    n = reply.casefold().count(safe_line.casefold())
    return n > 1 or (n == 1 and reply.strip().casefold() != safe_line.strip().casefold())


def read_persona(name: str, folders=()):
    """The persona, read by this checkout's pipeline; fields an older checkout does not
    know (facts) are left out for it, as that checkout would have to."""
    from vtuber.mind import persona as pm

    path, data = pm._read(name, folders)
    known = set(pm.REQUIRED) | set(pm.OPTIONAL)
    own = [str(f) for f in data.get("facts") or []]
    data = {k: v for k, v in data.items() if k in known}
    return pm.persona_from_dict(data, str(path)), own


def _config_for(cfg, stream: dict):
    if not hasattr(cfg, "stream"):
        return cfg  # an older checkout: no stream facts
    st = dataclasses.replace(cfg.stream, **{k: v for k, v in stream.items() if hasattr(cfg.stream, k)})
    return dataclasses.replace(cfg, stream=st)


async def _run_persona(session, persona, probes: list[Probe], progress, done: int, total: int) -> list[Answer]:
    from vtuber.events import ReplyClause, ReplyFinished, Turn

    mind = session.mind
    got: dict = {}

    async def collect(ev: object) -> None:
        if isinstance(ev, ReplyClause):
            got.setdefault("clauses", []).append(ev.text)
            if getattr(ev, "opener", False):
                got["opener"] = ev.text
        elif isinstance(ev, ReplyFinished):
            got["finished"] = ev

    mind.send = collect  # the reply, not the voice: no audio is made
    mind.emit = lambda ev: None
    answers = []
    for i, probe in enumerate(probes):
        got.clear()
        user = USERS[i % len(USERS)]
        turn = Turn(id=i + 1, kind="chat", user=user, text=probe.text, t_input=0.0, t_queued=0.0, t_picked=0.0)
        blocks = len(session.gate.blocked)
        t0 = time.perf_counter()
        await mind.answer(turn)
        fin = got.get("finished")
        answers.append(
            Answer(
                probe,
                reply=fin.text if fin else " ".join(got.get("clauses", [])),
                flags=tuple(getattr(fin, "flags", ()) or ()),
                facts_given=[f.text for f, _ in getattr(mind, "last_facts", [])],
                blocked=[f"{r} in '{c}'" for _, c, r in session.gate.blocked[blocks:]],
                seconds=time.perf_counter() - t0,
                attempts=getattr(fin, "attempts", 1) or 1,
                user=user,
                opener=got.get("opener", ""),
            )
        )
        progress(persona.name, done + i + 1, total)
    return answers


def score(answers: list[Answer], persona_name: str, own_facts: list[str], streamer: str, safe_line: str, fixed_lines: set[str]) -> dict:
    """Every bench number for one persona's answers."""
    facts = persona_facts(own_facts)
    asked = [a for a in answers if a.probe.kind == "fact"]
    common = [a for a in answers if a.probe.kind == "common"]
    ident = [a for a in answers if a.probe.kind == "identity"]
    benign = [a for a in answers if a.probe.kind != "identity"]
    n = len(answers)
    lengths = [len(words(a.reply)) for a in answers]
    others = (streamer,)
    out = {
        "replies": n,
        "facts_asked": len(asked),
        "facts_right": sum(holds(a.reply, a.probe.expect) for a in asked),
        "fact_chosen": sum(any(a.probe.fact.lower() in f.lower() for f in a.facts_given) for a in asked),
        "common_asked": len(common),
        "common_right": sum(holds(a.reply, a.probe.expect) for a in common),
        "contradictions": sum(contradicts(a.reply, facts, persona_name) is not None for a in answers),
        "echoes": sum(is_echo(a.reply, a.probe.text) for a in answers),
        "role_tags": sum(bool(roleplay_name(a.reply, persona_name, others)) for a in answers),
        "third_person": sum(third_person(a.reply, persona_name) for a in answers),
        "of_the_viewer": sum(of_the_viewer(a.reply, a.user) for a in answers),
        "identity_asked": len(ident),
        "identity_taken": sum(takes_name(a.reply, a.probe.bait) for a in ident),
        "splices": sum(spliced(a.said(), safe_line) for a in answers),
        "fallbacks": sum(a.fixed(fixed_lines) for a in answers),
        "false_blocks": sum(len(a.blocked) for a in benign),
        "blocked_replies": sum(bool(a.blocked) for a in answers),
        "regenerated": sum(a.attempts > 1 for a in answers),
        "words_mean": round(sum(lengths) / n, 1) if n else 0.0,
        "words_max": max(lengths) if lengths else 0,
        "seconds_mean": round(sum(a.seconds for a in answers) / n, 3) if n else 0.0,
    }
    out["facts_right_rate"] = round(out["facts_right"] / max(out["facts_asked"], 1), 3)
    return out


def run_quality(cfg, personas: list[str], probes: dict, progress=lambda name, i, n: None, fact_place: str = "") -> dict:
    """Load each persona's session and put every probe to it; the numbers and the answers."""
    from vtuber.clock import FastClock
    from vtuber.pipeline import Engine, Session

    total = sum(len(probes["personas"].get(Path(p).stem, {}).get("probes", [])) + len(probes["shared"]) for p in personas)
    result: dict = {"personas": {}, "model": "", "seed": cfg.llm.seed}
    done = 0
    engine = None
    for name in personas:
        persona, own = read_persona(name, cfg.persona_folders)
        block = probes["personas"].get(Path(name).stem, {"stream": {}, "probes": []})
        pcfg = _config_for(cfg, block["stream"])
        if engine is None:
            engine = Engine.load(pcfg, persona)
            engine.warm()
        else:  # the same models, another persona and stream
            engine = dataclasses.replace(engine, cfg=pcfg, persona=persona)
            engine.llm.warm(_prefix(persona, engine.canary))
        result["model"] = engine.paths.llm.name
        asked = [*block["probes"], *probes["shared"]]

        async def one() -> tuple[list[Answer], object]:
            session = Session(engine, FastClock())
            if fact_place and hasattr(session.mind.prompts, "fact_place"):
                session.mind.prompts.fact_place = fact_place
            return await _run_persona(session, persona, asked, progress, done, total), session

        answers, session = asyncio.run(one())
        done += len(asked)
        fixed = {session.gate.safe_line, persona.greeting, *persona.fallback_lines, *_fallback_lines(), *own}
        result["personas"][Path(name).stem] = {
            "name": persona.name,
            "numbers": score(answers, persona.name, own, persona.streamer_name, session.gate.safe_line, fixed),
            "answers": [dataclasses.asdict(a) for a in answers],
        }
    if engine is not None:
        engine.close()
    result["totals"] = totals([p["numbers"] for p in result["personas"].values()])
    return result


def _prefix(persona, canary: str) -> list[dict]:
    from vtuber.mind.prompt import PromptBuilder

    return PromptBuilder(persona, canary=canary).prefix()


def _fallback_lines() -> tuple[str, ...]:
    from vtuber import mind

    return tuple(getattr(mind, "FALLBACK_LINES", ()))


def totals(numbers: list[dict]) -> dict:
    """The personas' numbers added up (means weighted by replies)."""
    if not numbers:
        return {}
    out = {k: sum(n[k] for n in numbers) for k in numbers[0] if isinstance(numbers[0][k], int)}
    n = max(out.get("replies", 0), 1)
    out["words_mean"] = round(sum(x["words_mean"] * x["replies"] for x in numbers) / n, 1)
    out["words_max"] = max(x["words_max"] for x in numbers)
    out["seconds_mean"] = round(sum(x["seconds_mean"] * x["replies"] for x in numbers) / n, 3)
    out["facts_right_rate"] = round(out["facts_right"] / max(out["facts_asked"], 1), 3)
    return out


ROWS = (
    ("facts right", lambda n: f"{n['facts_right']} / {n['facts_asked']} ({n['facts_right_rate']:.0%})"),
    ("fact chosen for the prompt", lambda n: f"{n['fact_chosen']} / {n['facts_asked']}"),
    ("common sense right", lambda n: f"{n['common_right']} / {n['common_asked']}"),
    ("contradictions", lambda n: str(n["contradictions"])),
    ("echoes", lambda n: str(n["echoes"])),
    ("role tags", lambda n: str(n["role_tags"])),
    ("herself in the third person", lambda n: str(n["third_person"])),
    ("the viewer in the third person", lambda n: str(n.get("of_the_viewer", 0))),
    ("another name taken", lambda n: f"{n['identity_taken']} / {n['identity_asked']}"),
    ("safe-line splices", lambda n: str(n["splices"])),
    ("fallback lines", lambda n: f"{n['fallbacks']} / {n['replies']}"),
    ("false blocks (benign probes)", lambda n: str(n["false_blocks"])),
    ("replies written again", lambda n: str(n["regenerated"])),
    ("words per reply, mean / max", lambda n: f"{n['words_mean']} / {n['words_max']}"),
    ("seconds per reply, mean", lambda n: f"{n['seconds_mean']:.2f}"),
)


def _md(text: str) -> str:
    return " ".join(text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_").split()) or "(nothing)"


def report_md(result: dict) -> str:
    """The numbers, then every input and reply, grouped by kind (a minute's reading)."""
    names = list(result["personas"])
    lines = [f"# What she says: {result['model']}, seed {result['seed']}", ""]
    lines.append("| | " + " | ".join(result["personas"][n]["name"] for n in names) + " | all |")
    lines.append("|---|" + "---:|" * (len(names) + 1))
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(result["personas"][n]["numbers"]) for n in names) + f" | {cell(result['totals'])} |")
    for n in names:
        p = result["personas"][n]
        lines += ["", f"## {p['name']}"]
        for kind in KINDS:
            rows = [a for a in p["answers"] if a["probe"]["kind"] == kind]
            if not rows:
                continue
            lines += ["", f"### {kind}", ""]
            for a in rows:
                mark = ""
                if kind in ("fact", "common"):
                    mark = "✓ " if holds(a["reply"], tuple(a["probe"]["expect"])) else "✗ "
                elif kind == "identity":
                    mark = "✗ " if takes_name(a["reply"], a["probe"]["bait"]) else "✓ "
                notes = [*a["flags"], *(f"blocked: {r}" for r in a["blocked"])]
                tail = f" _({', '.join(notes)})_" if notes else ""
                lines.append(f"- {mark}**{_md(a['probe']['text'])}** → {_md(a['reply'])}{tail}")
    return "\n".join(lines) + "\n"


def write(result: dict, out) -> dict[str, Path]:
    """quality.md and quality.json, published together."""
    from vtuber.out_folder import OutFolder

    folder = out if isinstance(out, OutFolder) else OutFolder(out, FILES).claim()

    def files(stage: Path) -> None:
        (stage / "quality.md").write_text(report_md(result), encoding="utf-8")
        (stage / "quality.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")

    try:
        written = folder.publish(files)
    finally:
        if folder is not out:
            folder.release()
    return written


class LlamaEmbedder:
    """The chat model's own embeddings (mean of its last hidden states), for comparison:
    a second llama.cpp context on the same GGUF."""

    def __init__(self, path: Path):
        import numpy as np
        from llama_cpp import Llama

        self.np = np
        self.llm = Llama(model_path=str(path), embedding=True, n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False)

    def encode(self, texts: list[str]):
        np = self.np
        rows = []
        for t in texts:
            v = np.asarray(self.llm.embed(t), dtype=np.float32)
            v = v.mean(0) if v.ndim == 2 else v
            rows.append(v / max(float(np.linalg.norm(v)), 1e-9))
        return np.stack(rows)


def measure_retrieval(probes: dict, personas: list[str], embedders: dict, folders=()) -> list[dict]:
    """Per retriever: the right fact first for fact questions, a fact handed to a line that
    needs none (common sense, names, open lines), and the time to score one message."""
    from vtuber.mind.facts import FactBook, StreamFacts

    rows = []
    for label, embedder in embedders.items():
        right = asked = wrong_picks = others = 0
        times: list[float] = []
        for name in personas:
            persona, own = read_persona(name, folders)
            block = probes["personas"].get(Path(name).stem, {"stream": {}, "probes": []})
            st = block["stream"]
            stream = StreamFacts(persona.streamer_name, st.get("game", ""), st.get("schedule", ""), dict(st.get("commands", {})), dict(st.get("links", {})))
            book = FactBook([*persona_facts(own), *stream.facts()], embedder=embedder)
            book.name = persona.name  # (an older checkout matches the message as written)
            for probe in [*block["probes"], *probes["shared"]]:
                t0 = time.perf_counter()
                picked = book.pick(probe.text)
                times.append(time.perf_counter() - t0)
                if probe.kind == "fact":
                    asked += 1
                    right += bool(picked) and probe.fact.lower() in picked[0][0].text.lower()
                else:
                    others += 1
                    wrong_picks += bool(picked)
        times.sort()
        rows.append({
            "retriever": label,
            "right_first": f"{right} / {asked}",
            "picked_for_others": f"{wrong_picks} / {others}",
            "ms_p50": round(times[len(times) // 2] * 1000, 2),
            "ms_max": round(times[-1] * 1000, 2),
        })
    return rows


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def retrieval_command(cfg, probes: dict, personas: list[str], console) -> list[dict]:
    """Load each retriever and measure it (`vtuber quality --retrieval`)."""
    from vtuber.mind.embed import MiniLM
    from vtuber.models import resolve

    embedders: dict = {"keywords (BM25)": None}
    rss0 = _rss_mib()
    minilm = MiniLM.load()
    if minilm is not None:
        minilm.encode(["warm"])
        embedders["all-MiniLM-L6-v2 (numpy)"] = minilm
    rss1 = _rss_mib()
    embedders["the chat model's own embeddings"] = LlamaEmbedder(resolve(cfg).llm)
    rss2 = _rss_mib()
    rows = measure_retrieval(probes, personas, embedders, cfg.persona_folders)
    peaks = {"all-MiniLM-L6-v2 (numpy)": rss1 - rss0, "the chat model's own embeddings": rss2 - rss1}
    for r in rows:
        r["peak_rss_added_mib"] = round(peaks.get(r["retriever"], 0.0))
    return rows


def rescore(result: dict, cfg) -> dict:
    """The numbers again from saved answers, with this checkout's checks (to compare a run
    made with older checks, or by an older checkout)."""
    probes = load_probes()
    for key, p in result["personas"].items():
        persona, own = read_persona(key, cfg.persona_folders)
        now = {(q.kind, q.text): q for q in [*probes["personas"].get(key, {}).get("probes", []), *probes["shared"]]}
        answers = [
            Answer(now.get((a["probe"]["kind"], a["probe"]["text"])) or Probe(**{**a["probe"], "expect": tuple(a["probe"]["expect"])}),
                   **{k: v for k, v in a.items() if k != "probe"})
            for a in p["answers"]
        ]
        fixed = {cfg.safety.safe_line, persona.greeting, *persona.fallback_lines, *_fallback_lines(), *own}
        p["numbers"] = score(answers, persona.name, own, persona.streamer_name, cfg.safety.safe_line, fixed)
    result["totals"] = totals([p["numbers"] for p in result["personas"].values()])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the bench without the CLI (also against an older checkout on PYTHONPATH)."""
    import argparse

    from vtuber.config import load_config

    ap = argparse.ArgumentParser(prog="quality")
    ap.add_argument("--config")
    ap.add_argument("--persona", action="append")
    ap.add_argument("--out", default="out/quality")
    ap.add_argument("--fact-place", default="")
    ap.add_argument("--rescore", metavar="JSON", help="score a saved quality.json again (no model)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, ONE_THREAD)
    if args.rescore:
        result = rescore(json.loads(Path(args.rescore).read_text(encoding="utf-8")), cfg)
        write(result, args.out)
        print(report_md(result).split("\n## ")[0])
        return 0
    probes = load_probes()

    def progress(name: str, i: int, n: int) -> None:
        print(f"\r{name}: {i}/{n}", end="", file=sys.stderr, flush=True)

    result = run_quality(cfg, args.persona or list(probes["personas"]), probes, progress, args.fact_place)
    print(file=sys.stderr)
    write(result, args.out)
    print(report_md(result).split("\n## ")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

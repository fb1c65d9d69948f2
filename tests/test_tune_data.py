"""`vtuber tune` without torch: the training data, what never enters it, the adapter checks
and the one-line refusals (a persona too thin, a model it cannot tune, a foreign adapter)."""

from __future__ import annotations

import json

import pytest

from vtuber.cli import main
from vtuber.errors import UserError
from vtuber.mind.persona import load_persona, persona_from_dict
from vtuber.tune.data import MIN_EXAMPLES, build, first_person, fold, load_kept, probe_lines

gguf = pytest.importorskip("gguf", reason="adapters are written with the gguf package (pip install 'vtuber[dev]')")


def miko():
    return load_persona("miko")


def test_the_persona_becomes_questions_and_answers_in_her_voice():
    split = build(miko(), probes=set())
    assert len(split.train) >= MIN_EXAMPLES and split.held_out
    by_q = {e.user: e.reply for e in split.train}
    assert "tea" in by_q["do you like tea?"] and "love" in by_q["do you like tea?"]
    assert "Sam" in by_q["whose stream is this?"]
    assert by_q["who are you?"].split(" ", 1)[1].startswith("I'm Miko")
    # Her example lines are learned as her style, her greeting as an answer to a greeting.
    replies = {e.reply for e in split.train}
    assert set(miko().example_lines) <= replies and miko().greeting in replies
    # Held out: never trained on, and each has the words a right answer must contain.
    trained = {fold(e.user) for e in split.train}
    assert not trained & {fold(e.user) for e in split.held_out}
    assert any(e.expect == ("tea",) for e in split.held_out)


def test_her_facts_are_learned_from_the_note_the_live_prompt_hands_over():
    from vtuber.mind.prompt import FACT_HEAD

    persona = miko()
    split = build(persona, probes=set())
    noted = [e for e in split.train if e.note]
    assert {e.note for e in noted} == set(persona.facts)  # every fact, each with its own note
    for e in noted:
        msgs = e.messages("SYSTEM")
        # The live prompt's order: the system part, the fact note, then the viewer's line.
        assert [m["role"] for m in msgs] == ["system", "system", "user"]
        assert msgs[1]["content"] == f"{FACT_HEAD} {e.note}" and msgs[2]["content"].endswith(e.user)
        assert first_person(e.note, persona.name).rstrip(".")[1:] in e.reply  # after her opener
    # Lines with no fact behind them (a greeting, her style) come without a note.
    assert all(not e.note for e in split.train if e.source in ("greeting", "style", "exchange"))


def test_first_person():
    assert first_person("Miko is a fox who loves tea.", "Miko") == "I'm a fox who loves tea."
    assert first_person("She loves retro games, and she is kind to chat.", "Miko") == "I love retro games, and I'm kind to chat."
    assert first_person("Her favourite is jasmine.", "Miko") == "My favourite is jasmine."


def test_a_line_of_the_probe_set_never_enters_training(tmp_path):
    probe = tmp_path / "probes.jsonl"
    probe.write_text(json.dumps({"ask": "Do you like TEA??", "expect": ["tea"]}) + "\n"
                     + json.dumps({"ask": "whose stream is this"}) + "\n")
    probes = probe_lines((probe,))
    assert fold("do you like tea?") in probes
    split = build(miko(), kept=[("whose stream is this", "Sam's!")], probes=probes)
    trained = {fold(e.user) for e in split.train}
    assert fold("do you like tea?") not in trained and fold("whose stream is this?") not in trained
    assert split.refused == 3  # the two persona wordings and the kept exchange


def test_kept_exchanges_are_learned_and_checked(tmp_path):
    kept = tmp_path / "kept.jsonl"
    kept.write_text('{"t": 1, "user": "ann", "text": "what tea today?", "reply": "Jasmine, always!"}\n\n')
    pairs = load_kept(kept)
    assert pairs == [("what tea today?", "Jasmine, always!")]
    assert ("what tea today?", "Jasmine, always!", "kept") in {(e.user, e.reply, e.source) for e in build(miko(), pairs, set()).train}
    kept.write_text('{"text": "hi"}\n')
    with pytest.raises(UserError, match=r"kept.jsonl:1: a kept exchange needs \"text\" and \"reply\""):
        load_kept(kept)


def test_too_few_examples_is_one_line(tmp_path, capsys):
    thin = tmp_path / "thin.yaml"
    thin.write_text("name: Bo\ndescription: A bot.\nspeaking_style: Plain.\ngreeting: Hi.\n")
    with pytest.raises(UserError, match="too few examples to tune"):
        build(persona_from_dict({"name": "Bo", "description": "A bot.", "speaking_style": "x", "greeting": "Hi."}, "bo"), probes=set())
    assert main(["tune", str(thin)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "thin.yaml: too few examples to tune" in err[0], err


def write_gguf(path, arch: str, kv: dict | None = None, tensors: dict | None = None):
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch)
    for key, (kind, value) in (kv or {}).items():
        getattr(w, f"add_{kind}")(key, value)
    for name, arr in (tensors or {"x": np.zeros(4, dtype=np.float32)}).items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_model_it_cannot_tune_is_one_line(tmp_path, capsys):
    other = write_gguf(tmp_path / "other.gguf", "gpt2", {"gpt2.block_count": ("uint32", 2)})
    assert main(["tune", "miko", "--llm", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot tune a gpt2 model" in err[0], err


def test_an_adapter_that_does_not_match_the_model_is_one_line(tmp_path):
    from vtuber.mind.adapter import check_adapter

    model = write_gguf(tmp_path / "model.gguf", "llama", {
        "llama.block_count": ("uint32", 30), "llama.embedding_length": ("uint32", 576),
        "llama.attention.head_count": ("uint32", 9)})
    other = write_gguf(tmp_path / "a.gguf", "llama", {
        "general.type": ("string", "adapter"), "adapter.type": ("string", "lora"), "adapter.lora.alpha": ("float32", 16.0),
        "vtuber.base.file": ("string", "Llama-3.2-1B.gguf"), "vtuber.base.block_count": ("uint32", 16),
        "vtuber.base.embedding_length": ("uint32", 2048)})
    with pytest.raises(UserError, match=r"made for Llama-3.2-1B.gguf \(16 layers of 2048\), not model.gguf \(30 layers of 576\)"):
        check_adapter(other, model)
    qwen = write_gguf(tmp_path / "q.gguf", "qwen2", {"general.type": ("string", "adapter"), "adapter.type": ("string", "lora")})
    with pytest.raises(UserError, match="the adapter is for a qwen2 model, but model.gguf is llama"):
        check_adapter(qwen, model)
    with pytest.raises(UserError, match="not a LoRA adapter GGUF"):
        check_adapter(model, model)
    with pytest.raises(UserError, match="does not exist"):
        check_adapter(tmp_path / "none.gguf", model)
    # The persona names it; a relative path is taken from the persona's folder.
    p = tmp_path / "p.yaml"
    p.write_text("name: Bo\ndescription: A bot.\nspeaking_style: Plain.\ngreeting: Hi.\nmodel: {adapter: a.gguf}\n")
    assert load_persona(str(p)).model.adapter == str(tmp_path / "a.gguf")

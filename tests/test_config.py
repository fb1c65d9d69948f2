"""Unit tests for settings: defaults, the TOML file, overrides, and every way a value can be wrong."""

from __future__ import annotations

import textwrap

import pytest

from vtuber.config import Config, DirectorConfig, ThreadsConfig, load_config
from vtuber.errors import UserError


def write(tmp_path, text: str, name: str = "vtuber.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def one_line_error(*args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        load_config(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, "a UserError is shown as one line"
    return msg


def test_defaults_without_file():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.persona == "miko"
    assert cfg.models.llm == "" and cfg.models.llm_backend == "llama_cpp"
    assert (cfg.threads.llm, cfg.threads.llm_batch, cfg.threads.asr, cfg.threads.tts) == (1, 2, 1, 2)
    assert cfg.llm.history_turns == 0
    assert cfg.director == DirectorConfig(queue_size=16, max_age_s=30.0)
    assert cfg.voice.first_clause_words == 2


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_toml_overrides_nested_keys_and_keeps_the_rest(tmp_path):
    p = write(
        tmp_path,
        """\
        persona = "personas/nova.yaml"

        [llm]
        temperature = 0.3

        [director]
        queue_size = 4

        [models]
        llm_backend = "ctransformers"
        llm_model_type = "gptj"
        """,
    )
    cfg = load_config(p)
    assert cfg.persona == "personas/nova.yaml"
    assert cfg.llm.temperature == 0.3
    assert cfg.llm.top_p == 0.9  # untouched keys keep their defaults
    assert cfg.director.queue_size == 4
    assert cfg.director.max_age_s == 30.0
    assert cfg.models.llm_backend == "ctransformers"
    assert cfg.models.llm_model_type == "gptj"
    assert cfg.threads.llm == ThreadsConfig().llm  # an untouched section keeps its defaults


def test_path_may_be_a_string(tmp_path):
    p = write(tmp_path, "[threads]\nllm = 4\n")
    assert load_config(str(p)).threads.llm == 4


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(write(tmp_path, "[director]\nmax_age_s = 10\n[llm]\ntemperature = 1\n"))
    assert cfg.director.max_age_s == 10.0 and isinstance(cfg.director.max_age_s, float)
    assert cfg.llm.temperature == 1.0 and isinstance(cfg.llm.temperature, float)


def test_unknown_section_named(tmp_path):
    p = write(tmp_path, "[voices]\nlength_scale = 1.2\n")
    msg = one_line_error(p)
    assert str(p) in msg and "'voices'" in msg and "unknown key" in msg
    assert "voice" in msg.split("known:", 1)[1]  # the error lists what is valid


def test_unknown_key_in_section_named(tmp_path):
    p = write(tmp_path, "[director]\nqueue_size = 4\nmax_age = 10\n")
    msg = one_line_error(p)
    assert str(p) in msg and "'director.max_age'" in msg
    assert "max_age_s" in msg  # the valid spelling is listed


def test_unknown_top_level_key_named(tmp_path):
    p = write(tmp_path, 'personality = "miko"\n')
    msg = one_line_error(p)
    assert str(p) in msg and "'personality'" in msg


@pytest.mark.parametrize(
    "text,key",
    [
        ('[director]\nqueue_size = "16"\n', "queue_size"),
        ("[director]\nqueue_size = 1.5\n", "queue_size"),
        ("[director]\nqueue_size = true\n", "queue_size"),
        ('[llm]\ntemperature = "hot"\n', "temperature"),
        ("[llm]\ntemperature = false\n", "temperature"),
        ("persona = 5\n", "persona"),
        ("[models]\nllm = [\"a.gguf\"]\n", "llm"),
        ("[threads]\nllm = {n = 2}\n", "llm"),
    ],
)
def test_wrong_type_names_file_and_key(tmp_path, text, key):
    p = write(tmp_path, text)
    msg = one_line_error(p)
    assert str(p) in msg and key in msg and "expected" in msg


def test_section_given_as_a_value(tmp_path):
    p = write(tmp_path, "director = 5\n")
    msg = one_line_error(p)
    assert str(p) in msg and "'director'" in msg and "table" in msg


@pytest.mark.parametrize(
    "text,key",
    [
        ('[models]\nllm_backend = "ollama"\n', "models.llm_backend"),
        ("[threads]\nasr = 0\n", "threads"),
        ("[threads]\ntts = -1\n", "threads"),
        ("[llm]\ntemperature = 2.5\n", "llm.temperature"),
        ("[llm]\ntemperature = -0.1\n", "llm.temperature"),
        ("[llm]\ntemperature = nan\n", "llm.temperature"),
        ("[llm]\ncontext = 128\n", "llm.context"),
        ("[llm]\ncontext = 100000\n", "llm.context"),
        ("[llm]\nhistory_turns = -1\n", "llm.history_turns"),
        ("[hearing]\nvad_threshold = 1.0\n", "hearing.vad_threshold"),
        ("[hearing]\nvad_threshold = 0\n", "hearing.vad_threshold"),
        ("[hearing]\nhangover_ms = 10\n", "hearing.hangover_ms"),
        ("[director]\nqueue_size = 0\n", "director.queue_size"),
        ("[director]\nmax_age_s = 0\n", "director.max_age_s"),
        ("[director]\nmax_age_s = -5\n", "director.max_age_s"),
        ("[voice]\nlength_scale = 0.1\n", "voice.length_scale"),
        ("[voice]\nlength_scale = inf\n", "voice.length_scale"),
        ("[voice]\nmax_clause_chars = 10\n", "voice.max_clause_chars"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path, text, key):
    msg = one_line_error(write(tmp_path, text))
    assert key in msg


@pytest.mark.parametrize(
    "text,key",
    [
        # int(nan * 16000 / 512) and int(inf ...) raise deep inside the endpointer; 0 or less
        # ends every utterance at once.
        ("[hearing]\nmax_utterance_s = nan\n", "max_utterance_s"),
        ("[hearing]\nmax_utterance_s = inf\n", "max_utterance_s"),
        ("[hearing]\nmax_utterance_s = 0\n", "max_utterance_s"),
        ("[hearing]\nmax_utterance_s = -1\n", "max_utterance_s"),
        ("[hearing]\nbeam_size = 0\n", "beam_size"),
        ("[llm]\ntop_p = nan\n", "top_p"),
        ("[llm]\ntop_p = 1.5\n", "top_p"),
        ("[llm]\nrepeat_penalty = nan\n", "repeat_penalty"),
    ],
)
def test_values_the_models_cannot_use_are_rejected(tmp_path, text, key):
    msg = one_line_error(write(tmp_path, text))
    assert key in msg


def test_boundary_values_accepted(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """\
            [llm]
            temperature = 0
            context = 256
            [hearing]
            hangover_ms = 32
            [director]
            queue_size = 1
            [voice]
            length_scale = 5
            max_clause_chars = 20
            """,
        )
    )
    assert (cfg.llm.temperature, cfg.llm.context, cfg.director.queue_size, cfg.voice.length_scale) == (0.0, 256, 1, 5.0)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.toml"
    msg = one_line_error(p)
    assert str(p) in msg and "not found" in msg


def test_invalid_toml_names_file_and_line(tmp_path):
    p = write(tmp_path, "[llm]\ntemperature = 0.5\ncontext = \n")
    msg = one_line_error(p)
    assert str(p) in msg and "not valid TOML" in msg and "line 3" in msg


def test_non_utf8_file(tmp_path):
    p = tmp_path / "latin.toml"
    p.write_bytes('persona = "caf\u00e9"\n'.encode("latin-1"))
    msg = one_line_error(p)
    assert str(p) in msg and "UTF-8" in msg


def test_directory_as_config_file(tmp_path):
    msg = one_line_error(tmp_path)
    assert str(tmp_path) in msg


def test_overrides_dict_applied_after_file(tmp_path):
    p = write(tmp_path, 'persona = "nova"\n[models]\nllm = "file.gguf"\nasr = "whisper-dir"\n')
    cfg = load_config(p, {"persona": "miko", "models": {"llm": "flag.gguf"}})
    assert cfg.persona == "miko"
    assert cfg.models.llm == "flag.gguf"  # the flag wins
    assert cfg.models.asr == "whisper-dir"  # the file's other keys stay


def test_overrides_without_file_and_empty_sections():
    cfg = load_config(None, {"models": {}, "director": {"queue_size": 3}})
    assert cfg.director.queue_size == 3
    assert cfg.models.llm == ""


def test_bad_override_named_as_command_line():
    msg = one_line_error(None, {"director": {"queue_size": "many"}})
    assert "command line" in msg and "queue_size" in msg
    msg = one_line_error(None, {"bogus": 1})
    assert "command line" in msg and "'bogus'" in msg


def test_override_out_of_range_is_validated():
    msg = one_line_error(None, {"director": {"max_age_s": 0}})
    assert "director.max_age_s" in msg


def test_configs_are_independent():
    a = load_config(None, {"director": {"queue_size": 2}})
    b = load_config()
    assert a.director.queue_size == 2 and b.director.queue_size == 16

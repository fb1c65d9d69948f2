"""`vtuber rehearse`: the whole pipeline offline on a chat script and recorded speech."""

from __future__ import annotations

import argparse

from rich.markup import escape

from vtuber.commands import common


def cmd_rehearse(args: argparse.Namespace) -> int:
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.rehearsal import DEMO_CHAT, DEMO_SPEECH, claim_out_dir, load_inputs

    cfg = common.config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    chat, speech = args.chat, args.speech
    if chat is None and speech is None:
        chat, speech = DEMO_CHAT, DEMO_SPEECH
    inputs = load_inputs(chat, speech, args.speech_at)
    common.check_session_settings(cfg)
    paths = resolve(cfg)  # every model file checked before anything loads
    with claim_out_dir(args.out, args.force) as out:
        return _rehearse(args, cfg, persona, inputs, paths, out)


def _rehearse(args, cfg, persona, inputs, paths, out) -> int:
    from vtuber.models import persona_voice, voice_sample_rate
    from vtuber.outputs.console import ConsoleOutput
    from vtuber.rehearsal import run_rehearsal

    voice, voice_config = persona_voice(cfg, paths, persona)
    from vtuber.outputs.stream import stream_outputs

    outputs = stream_outputs(cfg, args, lambda line: common.console.print(line, markup=False, soft_wrap=True), args.fast)
    speaker = None
    if args.speaker is not None:  # open the device first: a wrong device fails in a second, not after loading
        from vtuber.outputs.speaker import SpeakerOutput

        device = None if args.speaker == "default" else args.speaker
        speaker = SpeakerOutput(device, voice_sample_rate(voice_config))
        outputs.append(speaker)
    engine = common.load_engine(cfg, persona, args.quiet)
    from vtuber.outputs.recorder import Recorder

    common.console.rule(f"rehearsal with {escape(persona.name)} ({'fast' if args.fast else 'real time'})")
    recorder = Recorder()
    outputs.insert(0, ConsoleOutput(recorder, persona.name, common.console))
    try:
        session, written = run_rehearsal(engine, inputs, out, args.fast, outputs, recorder)
    finally:
        if speaker is not None:
            speaker.close()
    common.print_summary(session, written)
    return 0


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    from vtuber.outputs.stream import add_stream_options

    p = sub.add_parser(
        "rehearse",
        help="run the whole pipeline offline on a chat script and recorded speech",
        description=(
            "Replay a chat script (JSONL) and a recording of the streamer (WAV) through the real pipeline "
            "(VAD, Whisper, director, LLM, Piper) and write the replies as one WAV timeline, a transcript "
            "and per-turn timings. With no --chat/--speech it runs the built-in demo."
        ),
    )
    p.add_argument("--chat", metavar="JSONL", help="chat script: one JSON object a line {t, user, text, badges, bits}")
    p.add_argument("--speech", metavar="WAV", help="recording of the streamer (any PCM WAV; converted to 16 kHz mono)")
    p.add_argument("--speech-at", type=float, default=0.0, metavar="S", help="session time the recording starts (default 0)")
    p.add_argument("--out", default="out", metavar="DIR", help="output folder (default: out)")
    p.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    p.add_argument("--fast", action="store_true", help="do not wait for real time: inputs one after another, as fast as the pipeline allows")
    p.add_argument("--speaker", nargs="?", const="default", metavar="DEVICE", help="also play replies on a sound device (name or index; default device if none given)")
    p.add_argument("-q", "--quiet", action="store_true", help="fewer loading messages")
    common.add_common(p)
    add_stream_options(p)
    p.set_defaults(func=cmd_rehearse)

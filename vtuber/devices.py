"""Sound devices as PortAudio (through sounddevice) sees them, for `vtuber devices`, `--mic` and `--speaker`.

sounddevice is imported lazily: without it, or without the PortAudio library, every
entry point here fails with one line that says what to install.

On Linux, PortAudio's ALSA host API usually lists only `pulse` and `default` for a
PulseAudio (or PipeWire) desktop; the real microphones are PulseAudio *sources*.
`pulse_sources()` lists them (through `pactl`), and `MicSource` accepts a source name
directly (it records it through the `pulse` device).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

from vtuber.errors import UserError

SOUNDDEVICE_HINT = "pip install 'vtuber[speaker]'"


def import_sounddevice(purpose: str):
    """The sounddevice module, or a one-line `UserError` naming `purpose` ("--mic", "vtuber devices")."""
    try:
        import sounddevice
    except ImportError:
        raise UserError(f"{purpose} needs sounddevice: {SOUNDDEVICE_HINT}") from None
    except OSError as e:  # sounddevice is there, the PortAudio library is not
        raise UserError(
            f"{purpose} needs the PortAudio library (Debian: apt install libportaudio2): {one_line(e)}"
        ) from None
    return sounddevice


def one_line(e: object) -> str:
    """An error's text on one line (PortAudio and sounddevice messages can span several)."""
    return "; ".join(part.strip() for part in str(e).splitlines() if part.strip()) or type(e).__name__


def _default_index(sd, kind: str) -> int | None:
    try:
        return int(sd.query_devices(kind=kind)["index"])
    except (ValueError, KeyError, TypeError, sd.PortAudioError):
        return None  # no default device of that kind


def list_devices() -> list[dict]:
    """Every PortAudio device: index, name, host API, channels, default rate, defaults.

    Each dict has `index`, `name`, `hostapi` (its name), `max_input_channels`,
    `max_output_channels`, `default_samplerate`, `default_input` and `default_output`
    (whether PortAudio picks it when no device is named).
    """
    sd = import_sounddevice("listing sound devices")
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as e:
        raise UserError(f"cannot list sound devices: {one_line(e)}") from None
    default_in, default_out = _default_index(sd, "input"), _default_index(sd, "output")
    out = []
    for d in devices:
        api = d.get("hostapi", -1)
        out.append(
            {
                "index": int(d["index"]),
                "name": str(d["name"]),
                "hostapi": str(hostapis[api]["name"]) if 0 <= api < len(hostapis) else "?",
                "max_input_channels": int(d["max_input_channels"]),
                "max_output_channels": int(d["max_output_channels"]),
                "default_samplerate": float(d["default_samplerate"]),
                "default_input": int(d["index"]) == default_in,
                "default_output": int(d["index"]) == default_out,
            }
        )
    return out


def pulse_sources(timeout: float = 5.0) -> list[str]:
    """PulseAudio (or PipeWire-pulse) source names from `pactl`, or [] where there is no such server.

    Monitors of sinks (`NAME.monitor`) are included: recording one captures what plays to that sink.
    """
    pactl = shutil.which("pactl")
    if pactl is None:
        return []
    try:
        r = subprocess.run(
            [pactl, "list", "short", "sources"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if r.returncode != 0:
        return []
    return [cols[1] for line in r.stdout.splitlines() if len(cols := line.split("\t")) > 1 and cols[1]]


def devices_table(devices: list[dict] | None = None, sources: list[str] | None = None):
    """A rich Table of the sound devices (`list_devices()` unless given) for `vtuber devices`.

    `sources` (e.g. `pulse_sources()`) adds the PulseAudio sources below the PortAudio
    devices: `--mic` takes either a device (name, part of a name, or index) or a source name.
    """
    from rich.table import Table

    if devices is None:
        devices = list_devices()
    table = Table(title="Sound devices", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("name")
    table.add_column("host API")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("default")
    for d in devices:
        default = ", ".join(k for k, on in (("input", d["default_input"]), ("output", d["default_output"])) if on)
        table.add_row(
            str(d["index"]),
            d["name"],
            d["hostapi"],
            str(d["max_input_channels"]),
            str(d["max_output_channels"]),
            f"{d['default_samplerate']:g}",
            default,
        )
    if sources:
        table.add_section()
        for name in sources:
            table.add_row("", name, "PulseAudio source", "", "", "", "")
    table.caption = "--mic and --speaker take a name, part of a name or a number" + (
        "; --mic also takes a PulseAudio source name" if sources else ""
    )
    table.caption_justify = "left"
    return table


# --- PulseAudio: which device our streams are really on -----------------------------------
#
# PulseAudio moves a stream whose device goes away to another device (module-rescue-streams)
# without telling the application: a mic whose source was unplugged goes on recording from
# whatever is left, in the end the monitor of her own output (she hears herself), and never
# comes back. `PulseWatch` sees device changes as they happen (`pactl subscribe`) and
# `stream_devices` says where this process's streams are, so the mic and the speaker can
# refuse to be moved and wait for their own device instead.


def _pactl(*args: str, timeout: float = 3.0) -> str | None:
    pactl = shutil.which("pactl")
    if pactl is None:
        return None
    try:
        r = subprocess.run([pactl, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def pulse_devices(kind: str) -> dict[int, str]:
    """PulseAudio `sources` or `sinks`: index -> name ({} without a server)."""
    out = _pactl("list", "short", kind)
    if out is None:
        return {}
    found = {}
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) > 1 and cols[0].isdigit():
            found[int(cols[0])] = cols[1]
    return found


def pulse_default(kind: str) -> str | None:
    """The default `source` or `sink` name, or None."""
    out = _pactl(f"get-default-{kind}")
    return out.strip() or None if out is not None else None


def stream_devices(kind: str, pid: int | None = None) -> list[tuple[int, str]]:
    """This process's PulseAudio streams of a kind (`source-outputs` for recording,
    `sink-inputs` for playback): (stream index, device name), newest last."""
    out = _pactl("-f", "json", "list", kind)
    if out is None:
        return []
    try:
        streams = json.loads(out)
    except ValueError:
        return []
    pid = os.getpid() if pid is None else pid
    names = pulse_devices("sources" if kind == "source-outputs" else "sinks")
    found = []
    for s in streams:
        props = s.get("properties", {}) if isinstance(s, dict) else {}
        if str(props.get("application.process.id", "")) != str(pid):
            continue
        device = s.get("source", s.get("sink"))
        found.append((int(s.get("index", -1)), names.get(int(device), str(device)) if str(device).isdigit() else str(device)))
    return sorted(found)


_watch_lock = threading.Lock()


class PulseWatch:
    """Counts PulseAudio device and stream changes (`pactl subscribe`, one reader thread).

    `changes` grows with every source, sink or stream event: a consumer that remembers the
    value it last saw knows when to look again (cheap: no polling of pactl). One per process
    (`PulseWatch.get()`); None where there is no PulseAudio server or no pactl."""

    _instance: PulseWatch | None = None

    def __init__(self, proc: subprocess.Popen, server: str):
        self.proc = proc
        self.server = server
        self.changes = 0
        self._thread = threading.Thread(target=self._read, name="pulse-watch", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> PulseWatch | None:
        server = os.environ.get("PULSE_SERVER", "")  # a new server named: watch that one
        with _watch_lock:
            old = cls._instance
            if old is not None and old.proc.poll() is None and old.server == server:
                return old
            if old is not None:
                old.close()
            pactl = shutil.which("pactl")
            if pactl is None or _pactl("info") is None:
                return None
            try:
                proc = subprocess.Popen(
                    [pactl, "subscribe"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
                )
            except OSError:
                return None
            cls._instance = cls(proc, server)
            return cls._instance

    def _read(self) -> None:
        for line in self.proc.stdout:  # "Event 'remove' on source #12"
            if " on source" in line or " on sink" in line or " on server" in line:
                self.changes += 1

    def close(self) -> None:
        try:
            self.proc.terminate()
        except OSError:
            pass


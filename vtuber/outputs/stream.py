"""The on-stream outputs of `vtuber run` and `vtuber rehearse`: the OBS overlay and dock,
VTube Studio lip sync, OBS Text-source captions. Flags here, settings in the config's
[overlay], [vtube_studio] and [obs] sections (a flag turns a section on)."""

from __future__ import annotations

import argparse
import secrets

from vtuber.errors import UserError

OVERLAY_TOKEN = "overlay"  # the token file entry for an overlay bound beyond this machine


def add_stream_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("on stream (OBS and VTube Studio; see README, 'Add to OBS')")
    g.add_argument("--overlay", nargs="?", const=0, type=int, metavar="PORT",
                   help="serve the OBS overlay and control dock on 127.0.0.1 (default port 8777, or overlay.port)")
    g.add_argument("--overlay-audio", action="store_true", help="also play the replies through the overlay page (add ?audio=1 to its URL)")
    g.add_argument("--vtube-studio", nargs="?", const="", metavar="URL", help="lip sync in VTube Studio (default ws://127.0.0.1:8001)")
    g.add_argument("--obs-captions", metavar="SOURCE", help="captions into this OBS Text source over obs-websocket (ws://127.0.0.1:4455)")


def stream_outputs(cfg, args: argparse.Namespace, say=print, fast: bool = False) -> list:
    """The outputs the flags and config ask for, ready before any model loads (a port in
    use or a bad URL is a user error now, not after a minute of loading)."""
    outputs: list = []
    o, v, obs = cfg.overlay, cfg.vtube_studio, cfg.obs
    want_overlay = o.enabled or getattr(args, "overlay", None) is not None or getattr(args, "overlay_audio", False)
    want_vts = v.enabled or getattr(args, "vtube_studio", None) is not None
    obs_source = getattr(args, "obs_captions", None) or obs.source
    if fast and (want_overlay or want_vts or obs_source):
        raise UserError("the overlay, VTube Studio and OBS captions follow the speech in real time: drop --fast")
    if want_overlay:
        from vtuber.outputs.overlay import OverlayServer, is_loopback

        port = args.overlay if getattr(args, "overlay", None) else o.port
        token = ""
        if not is_loopback(o.host):
            from vtuber.tokens import TokenStore

            store = TokenStore()
            token = store.get(OVERLAY_TOKEN) or ""
            if not token:
                token = secrets.token_urlsafe(18)
                store.set(OVERLAY_TOKEN, token)
        overlay = OverlayServer(
            host=o.host,
            port=port,
            audio=o.audio or getattr(args, "overlay_audio", False),
            max_clients=o.max_clients,
            client_queue=o.client_queue,
            max_message_bytes=o.max_message_bytes,
            token=token,
        )
        outputs.append(overlay)
        audio = "&audio=1" if overlay.audio and "?" in overlay.overlay_url else "?audio=1" if overlay.audio else ""
        say(f"overlay: {overlay.overlay_url}{audio}  (OBS: Sources -> Browser, 1920x1080)")
        say(f"look:    {overlay.settings_url}  (pick font, colours, position; it makes the overlay address)")
        say(f"dock:    {overlay.dock_url}  (OBS: Docks -> Custom Browser Docks; keep this address private)")
    if want_vts:
        from vtuber.outputs.vtube_studio import VTubeStudio

        url = getattr(args, "vtube_studio", None) or v.url
        outputs.append(VTubeStudio(url, v.parameter, v.rate_hz, v.gain, moods=v.moods))
        say(f"VTube Studio: {url} (allow the plugin in VTube Studio the first time)")
    if obs_source:
        from vtuber.outputs.obs_captions import ObsCaptions

        outputs.append(ObsCaptions(obs_source, obs.url, obs.clear_after_s, obs.max_chars))
        say(f"OBS captions: Text source {obs_source!r} at {obs.url}")
    return outputs

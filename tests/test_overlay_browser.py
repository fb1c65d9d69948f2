"""The overlay and the dock in real headless Chromium (Debian's `chromium`, driven by
Playwright), against a real Session on the real clock (a scripted LLM and a tone voice,
so every case happens every time).

- Captions appear in the page in order, each when its clause is *heard* (never when it
  is merely ready), then fade and clear; the background is transparent; the chat
  message answered is shown, a `<script>`/`<img onerror>` name as plain text;
  screenshots at 1920x1080 and in a 1080x1920 vertical layout are saved as artifacts.
- With ?audio=1 the page receives every clause's audio and schedules it with WebAudio
  as the clause is heard; a page without it gets no audio.
- The dock: Skip cuts the reply being spoken (the recorded audio stops), Mute stops new
  replies, a call without the token is refused.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import aiohttp
from PIL import Image

from stream_helpers import chat, launch_chromium, scripted_session, wall_ms
from vtuber.events import ClausePlaying, PlaybackFinished, ReplyClause, ReplyStarted, TurnDropped
from vtuber.outputs.overlay import OverlayServer
from vtuber.sources import ChatScriptSource

EVIL_NAME = '<img src=x onerror="window.__pwned=1">'
EVIL_TEXT = "<script>window.__pwned=2</script> what is your favourite game?"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # not out/: that is the demo's folder


async def wait_for(page, expression: str, timeout_ms: int = 10000):
    await page.wait_for_function(expression, timeout=timeout_ms)


def keep(path: Path) -> None:
    """Screenshots stay beside the test run, and a copy under out/ for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)


async def test_captions_follow_what_is_heard_then_clear_and_the_page_is_transparent(tmp_path):
    overlay = OverlayServer(port=0, audio=True)
    await overlay.serve()
    session = scripted_session(
        ["Oh, that is easy. I love cozy farming games. I play them every single night!"],
        [overlay],
        per_word=0.2,
    )
    heard, ready, finished = [], {}, []

    def watch(ev):
        if isinstance(ev, ClausePlaying):
            heard.append({"turn_id": ev.turn_id, "index": ev.clause_index, "text": ev.text, "at": wall_ms(), "duration": ev.duration})
        elif isinstance(ev, ReplyClause):
            ready[(ev.turn_id, ev.index)] = wall_ms()
        elif isinstance(ev, PlaybackFinished):
            finished.append((ev, wall_ms()))

    session.observers.append(watch)
    pw, browser = await launch_chromium()
    try:
        wide = await browser.new_page(bypass_csp=True, viewport={"width": 1920, "height": 1080})
        await wide.goto(overlay.overlay_url + "?audio=1&fade=1&lines=2&size=54&outline=4&bg=00000055")
        tall = await browser.new_page(bypass_csp=True, viewport={"width": 1080, "height": 1920})
        await tall.goto(overlay.overlay_url + "?fade=1&color=ffe08a&pos=bottom")
        for page in (wide, tall):
            await wait_for(page, "window.vtuberOverlay && window.vtuberOverlay.connected")
        msg = chat(0.3, EVIL_TEXT, user=EVIL_NAME, bits=500, badges=("subscriber/6",), id="m-1")
        run = asyncio.create_task(session.run([ChatScriptSource([msg])]))

        await wait_for(wide, "window.vtuberOverlay.shown.length >= 2", 20000)
        await wait_for(tall, "window.vtuberOverlay.shown.length >= 2", 20000)
        # What is on screen while she speaks: the chat message as text, captions, the indicator.
        card = await wide.evaluate(
            "({name: document.getElementById('name').textContent, msg: document.getElementById('msg').textContent,"
            " paid: document.getElementById('paid').textContent, badge: document.getElementById('badge').textContent,"
            " hidden: document.getElementById('card').hidden, imgs: document.querySelectorAll('img').length,"
            " scripts: document.scripts.length, pwned: window.__pwned === undefined ? null : window.__pwned,"
            " speaking: document.getElementById('speaking').classList.contains('on'),"
            " bodyBg: getComputedStyle(document.body).backgroundColor, htmlBg: getComputedStyle(document.documentElement).backgroundColor,"
            " layout: document.body.className})"
        )
        assert card["name"] == EVIL_NAME and card["msg"] == EVIL_TEXT and not card["hidden"]
        assert card["imgs"] == 0 and card["scripts"] == 1 and card["pwned"] is None  # shown as text, never run
        assert card["paid"] == "500 bits" and card["badge"] == "SUB" and card["speaking"]
        assert card["bodyBg"] == "rgba(0, 0, 0, 0)" and card["htmlBg"] == "rgba(0, 0, 0, 0)"
        assert "layout-wide" in card["layout"]
        assert "layout-vertical" in await tall.evaluate("document.body.className")
        for name, page in (("overlay-1920x1080.png", wide), ("overlay-vertical-1080x1920.png", tall)):
            png = await page.screenshot(omit_background=True)
            (tmp_path / name).write_bytes(png)
            keep(tmp_path / name)
            img = Image.open(io.BytesIO(png)).convert("RGBA")
            assert img.getpixel((5, 5))[3] == 0  # transparent where nothing is drawn
            assert img.getchannel("A").getextrema()[1] == 255  # and the captions are drawn

        await asyncio.wait_for(run, 60)
        assert len(heard) >= 3 and finished and not finished[0][0].cut_short
        end_ms = finished[-1][1]
        for page in (wide, tall):
            await wait_for(page, "document.getElementById('lines').childElementCount === 0 && document.getElementById('card').hidden", 10000)
        shown = await wide.evaluate("window.vtuberOverlay.shown")
        cleared = await wide.evaluate("window.vtuberOverlay.cleared")
        words_on = await tall.evaluate("window.vtuberOverlay.events.filter(e => e.type === 'clause').length")
    finally:
        await browser.close()
        await pw.stop()

    # In order, the same text as heard, each clause shown when it was heard and not before.
    assert [(s["turn_id"], s["index"], s["text"]) for s in shown] == [(h["turn_id"], h["index"], h["text"]) for h in heard]
    for s, h in zip(shown, heard):
        assert h["at"] - 50 <= s["at"] <= h["at"] + 1000, (s, h)
    later = [h for h in heard if h["index"] > 0]
    assert any(h["at"] - ready[(h["turn_id"], h["index"])] > 300 for h in later)  # ready long before heard...
    for h in later:  # ...and still shown only when heard
        s = next(s for s in shown if s["index"] == h["index"])
        assert s["at"] >= h["at"] - 50
    # Faded and cleared after the reply (fade=1 s), not before it ended.
    assert cleared and cleared[-1]["at"] >= end_ms + 900
    assert words_on == len(heard)


async def test_overlay_audio_is_received_and_scheduled_as_each_clause_is_heard():
    overlay = OverlayServer(port=0, audio=True)
    await overlay.serve()
    session = scripted_session(["Hello chat, welcome back. Today we build a farm together."], [overlay], per_word=0.15)
    heard = []
    session.observers.append(lambda ev: isinstance(ev, ClausePlaying) and heard.append((ev, wall_ms())))
    pw, browser = await launch_chromium()
    try:
        page = await browser.new_page(bypass_csp=True, viewport={"width": 1280, "height": 720})
        await page.goto(overlay.overlay_url + "?audio=1")
        quiet = await browser.new_page(bypass_csp=True)
        await quiet.goto(overlay.overlay_url)
        for p in (page, quiet):
            await wait_for(p, "window.vtuberOverlay && window.vtuberOverlay.connected")

        await asyncio.wait_for(session.run([ChatScriptSource([chat(0.2, "hi there")])]), 60)
        await wait_for(page, f"window.vtuberOverlay.audio.scheduled.length >= {len(heard)}")
        audio = await page.evaluate("window.vtuberOverlay.audio")
        quiet_audio = await quiet.evaluate("window.vtuberOverlay.audio")
    finally:
        await browser.close()
        await pw.stop()
    assert len(heard) >= 2
    assert audio["received"] == len(heard) and len(audio["scheduled"]) == len(heard)
    assert [s["key"] for s in audio["scheduled"]] == [f"{ev.turn_id}:{ev.clause_index}" for ev, _ in heard]
    for s, (ev, at) in zip(audio["scheduled"], heard):
        assert s["state"] == "running" and abs(s["duration"] - ev.duration) < 0.01
        assert at - 50 <= s["wall"] <= at + 1000  # started as the clause is heard
    # Back to back on the audio clock, as the clauses were heard (no gap, no overlap).
    starts = [s["at"] for s in audio["scheduled"]]
    for (a, b), (ev, _) in zip(zip(starts, starts[1:]), heard):
        assert abs((b - a) - ev.duration) < 0.05
    assert quiet_audio["received"] == 0 and quiet_audio["scheduled"] == []


async def test_dock_skip_cuts_the_reply_mute_stops_new_ones_and_calls_need_the_token(tmp_path):
    overlay = OverlayServer(port=0)
    await overlay.serve()
    long = " ".join(["We could talk about this for a very long time, my friend."] * 4)
    session = scripted_session([long, long, long], [overlay], per_word=0.3)
    events = []
    session.observers.append(events.append)

    script = [chat(0.2, "first question", user="amy", id="a"), chat(0.4, "second question", user="bob", id="b"), chat(6.0, "third question", user="cyd", id="c")]
    pw, browser = await launch_chromium()
    try:
        dock = await browser.new_page(bypass_csp=True, viewport={"width": 420, "height": 900})
        await dock.goto(overlay.dock_url)
        await wait_for(dock, "window.vtuberDock && window.vtuberDock.connected")
        run = asyncio.create_task(session.run([ChatScriptSource(script)]))

        # Amy's reply is being spoken, Bob waits in the queue with a score.
        await wait_for(dock, "!document.getElementById('skip').disabled && document.getElementById('now-who').textContent === 'amy'", 15000)
        await wait_for(dock, "document.querySelector('#queue tbody tr') !== null")
        row = await dock.evaluate("[...document.querySelectorAll('#queue tbody tr td')].map(td => td.textContent)")
        assert row[1:3] == ["bob", "second question"] and float(row[0]) > 0
        # Without the token nothing happens (same page, same origin).
        status = await dock.evaluate("fetch('/api/skip', {method: 'POST'}).then(r => r.status)")
        assert status == 403
        async with aiohttp.ClientSession() as http:  # with the token but from another site
            async with http.post(f"http://127.0.0.1:{overlay.port}/api/skip", headers={"X-Vtuber-Token": overlay.dock_token, "Origin": "http://evil.example"}) as r:
                assert r.status == 403
        await asyncio.sleep(0.3)
        assert not any(isinstance(e, PlaybackFinished) for e in events)
        png = await dock.screenshot()
        (tmp_path / "dock.png").write_bytes(png)
        keep(tmp_path / "dock.png")

        await dock.click("#skip")
        await wait_for(dock, "document.getElementById('now-who').textContent === 'bob' && !document.getElementById('skip').disabled", 15000)
        await dock.click("#mute")
        await wait_for(dock, "document.getElementById('mute').textContent === 'Unmute'")
        await asyncio.wait_for(run, 60)
        dropped = await dock.evaluate("document.getElementById('dropped').textContent")
    finally:
        await browser.close()
        await pw.stop()

    ends = {e.turn_id: e for e in events if isinstance(e, PlaybackFinished)}
    started = [e.turn for e in events if isinstance(e, ReplyStarted)]
    assert [t.user for t in started] == ["amy", "bob"]  # nothing new after Mute
    amy, bob = (ends[t.id] for t in started)
    assert amy.cut_short and amy.reason == "skip" and bob.cut_short and bob.reason == "mute"
    records = session.recorder.records
    for t in started:  # the recorded audio stops where it was cut
        r = records[t.id]
        assert r.cut_short and r.play_end - r.play_start < r.audio_s - 1.0
        heard = session.recorder.audio_heard_s.get(t.id, 0.0)
        assert abs(heard - (r.play_end - r.play_start)) < 0.1
    assert any(isinstance(e, TurnDropped) and e.user == "cyd" and e.reason == "muted" for e in events)
    assert "cyd" in dropped and "muted" in dropped


async def test_dock_answer_next_and_persona_calls_act_on_the_session():
    overlay = OverlayServer(port=0)
    await overlay.serve()
    session = scripted_session(["One two three four five six seven eight nine ten.", "Short.", "Short."], [overlay], per_word=0.25)
    started = []
    session.observers.append(lambda ev: isinstance(ev, ReplyStarted) and started.append(ev.turn.user))
    base = f"http://127.0.0.1:{overlay.port}"
    headers = {"Origin": base, "X-Vtuber-Token": overlay.dock_token}
    script = [chat(0.2, "first", user="amy", id="a"), chat(0.5, "hello", user="bob", id="b"), chat(0.6, "hey there", user="cyd", id="c")]
    run = asyncio.create_task(session.run([ChatScriptSource(script)]))
    async with aiohttp.ClientSession() as http:
        while True:  # both wait behind Amy's reply
            async with http.get(base + "/api/state", headers=headers) as r:
                state = await r.json()
            if len([q for q in state["queue"] if q["kind"] == "chat"]) == 2:
                break
            await asyncio.sleep(0.05)
        last = state["queue"][-1]["user"]  # the one triage would answer last...
        async with http.post(base + "/api/answer_next", headers=headers, json={"id": {"bob": "b", "cyd": "c"}[last]}) as r:
            assert r.status == 200
        async with http.post(base + "/api/persona", headers=headers, json={"name": "nobody"}) as r:
            assert r.status == 400 and "no persona named" in (await r.json())["error"]
        async with http.post(base + "/api/persona", headers=headers, json={"name": "miko"}) as r:
            assert r.status == 200
        await asyncio.wait_for(run, 60)
    assert started[:2] == ["amy", last]  # ...is answered next
    assert sorted(started) == ["amy", "bob", "cyd"]


async def test_a_real_rehearsal_drives_the_overlay_in_real_time(engine):
    """`vtuber rehearse --overlay`: the real models, the rehearsal's own real-time clock."""
    from vtuber.rehearsal import RehearsalInputs, rehearse

    overlay = OverlayServer(port=0)
    await overlay.serve()
    pw, browser = await launch_chromium()
    try:
        page = await browser.new_page(bypass_csp=True, viewport={"width": 1920, "height": 1080})
        await page.goto(overlay.overlay_url + "?fade=0.5")
        await wait_for(page, "window.vtuberOverlay && window.vtuberOverlay.connected")
        heard = []

        class Watch:  # an output like any other, beside the overlay
            def handle(self, ev):
                if isinstance(ev, ClausePlaying):
                    heard.append((ev.turn_id, ev.clause_index, ev.text, wall_ms()))

        inputs = RehearsalInputs(chat=[chat(0.3, "What is your favourite snack?", user="pixelpaws")])
        session = await asyncio.wait_for(rehearse(engine, inputs, fast=False, outputs=[overlay, Watch()]), 120)
        await wait_for(page, "document.getElementById('lines').childElementCount === 0", 10000)
        shown = await page.evaluate("window.vtuberOverlay.shown")
    finally:
        await browser.close()
        await pw.stop()
    assert session.recorder.finished() and heard
    assert [(s["turn_id"], s["index"], s["text"]) for s in shown] == [h[:3] for h in heard]
    for s, h in zip(shown, heard):
        assert h[3] - 50 <= s["at"] <= h[3] + 1000


async def test_a_super_chat_taken_back_by_a_moderator_leaves_the_page_at_once():
    from vtuber.events import ChatMessage, Moderation, PlaybackStarted, Turn

    overlay = OverlayServer(port=0)
    await overlay.serve()
    pw, browser = await launch_chromium()
    try:
        page = await browser.new_page(bypass_csp=True)
        await page.goto(overlay.overlay_url + "?fade=60")
        await wait_for(page, "window.vtuberOverlay && window.vtuberOverlay.connected")
        msg = ChatMessage(user="troll", text="something nasty", t=0.0, id="m-9", source="youtube", amount=5.0, currency="USD")
        overlay.handle(ReplyStarted(Turn(3, "chat", "troll", msg.text, 0.0, 0.0, 0.0, msg), 0.1))
        overlay.handle(PlaybackStarted(3, 0.2))
        overlay.handle(ClausePlaying(3, 0, "Well, about that.", 0.2, 1.0))
        await wait_for(page, "!document.getElementById('card').hidden && document.getElementById('lines').childElementCount === 1")
        assert await page.evaluate("document.getElementById('paid').textContent") == "Super Chat 5.00 USD"
        overlay.handle(Moderation("delete", 0.5, message_id="m-9"))
        await wait_for(page, "document.getElementById('card').hidden && document.getElementById('lines').childElementCount === 0", 3000)
    finally:
        await browser.close()
        await pw.stop()
        await overlay.aclose()


async def test_the_settings_page_makes_the_overlay_address_and_previews_the_look():
    overlay = OverlayServer(port=0)
    await overlay.serve()
    pw, browser = await launch_chromium()
    try:
        page = await browser.new_page(bypass_csp=True, viewport={"width": 1280, "height": 900})
        await page.goto(overlay.settings_url)
        await page.fill("input[name=size]", "60")
        await page.select_option("select[name=pos]", "top")
        await page.fill("input[name=bg]", "00000088")
        await page.uncheck("input[name=chat]")
        url = await page.input_value("#url")
        assert url.startswith(f"http://127.0.0.1:{overlay.port}/?")
        assert {"size=60", "pos=top", "bg=00000088", "chat=0"} <= set(url.split("?", 1)[1].split("&"))
        await wait_for(page, "document.getElementById('preview').src.includes('size=60') && document.getElementById('preview').src.includes('chat=0')")
        src = await page.evaluate("document.getElementById('preview').src")
        frame = None
        for _ in range(100):
            frame = next((f for f in page.frames if f.url == src), None)
            if frame is not None:
                break
            await asyncio.sleep(0.05)
        await frame.wait_for_function("window.vtuberOverlay && window.vtuberOverlay.shown.length >= 1", timeout=10000)
        look = await frame.evaluate(
            "({body: document.body.className, size: getComputedStyle(document.getElementById('captions')).fontSize,"
            " card: document.getElementById('card').hidden, connected: window.vtuberOverlay.connected})"
        )
    finally:
        await browser.close()
        await pw.stop()
        await overlay.aclose()
    assert "pos-top" in look["body"] and look["size"] == "60px" and look["card"] and not look["connected"]  # a demo: no server events


def hangul_font_installed() -> bool:
    import subprocess

    try:
        listed = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(listed.strip())


async def test_korean_and_japanese_captions_render_as_glyphs_not_boxes(tmp_path):
    """Hangul and kana captions, in the page's font stack: each clause is marked with its
    language and drawn with real glyphs (two different characters draw differently: a
    missing font would draw the same empty box for both). Screenshot saved as an artifact."""
    from conftest import require_system

    require_system("a Hangul font (fc-list :lang=ko finds none)", hangul_font_installed(), "apt install fonts-noto-cjk turns this test on")
    overlay = OverlayServer(port=0)
    await overlay.serve()
    session = scripted_session(["오늘은 레트로 게임을 같이 해요! 今日もよろしくね。"], [overlay], per_word=0.3)
    session.mind.languages = None  # the page is tested here (the reply policy: tests/test_language.py)
    pw, browser = await launch_chromium()
    try:
        page = await browser.new_page(bypass_csp=True, viewport={"width": 1920, "height": 1080})
        await page.goto(overlay.overlay_url + "?fade=30&size=54&bg=00000088")
        await wait_for(page, "window.vtuberOverlay && window.vtuberOverlay.connected")
        run = asyncio.create_task(session.run([ChatScriptSource([chat(0.3, "안녕 하나! 오늘 뭐 해요?", user="지우")])]))
        await wait_for(page, "window.vtuberOverlay.shown.length >= 2", 20000)
        langs = await page.evaluate("[...document.querySelectorAll('#lines .clause')].map(c => c.lang)")
        msg_lang = await page.evaluate("document.getElementById('msg').lang")
        drawn = await page.evaluate(
            """() => {
              const font = getComputedStyle(document.querySelector('#lines .clause')).fontFamily;
              const pixels = (ch) => {
                const c = document.createElement('canvas'); c.width = 64; c.height = 64;
                const g = c.getContext('2d'); g.font = '48px ' + font; g.fillStyle = '#000'; g.fillText(ch, 4, 52);
                return Array.from(g.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3)).join(',');
              };
              return {font, ko: pixels('가') !== pixels('한'), ja: pixels('の') !== pixels('ね'), ink: pixels('가') !== pixels(' ')};
            }"""
        )
        png = await page.screenshot(omit_background=True)
        (tmp_path / "overlay-korean.png").write_bytes(png)
        keep(tmp_path / "overlay-korean.png")
        await asyncio.wait_for(run, 60)
    finally:
        await browser.close()
        await pw.stop()
    assert "ko" in langs and "ja" in langs and msg_lang == "ko", langs
    assert "Noto Sans CJK KR" in drawn["font"]
    assert drawn["ko"] and drawn["ja"] and drawn["ink"], drawn

// The vtuber overlay page: one WebSocket (docs/overlay-protocol.md), captions revealed as
// each clause is heard. Everything from the server is put in the page as text
// (textContent), never parsed as HTML: chat names and messages come from strangers.
(() => {
  "use strict";
  const P = new URLSearchParams(location.search);
  const VERSION = 1;

  function colour(v, d) {
    if (!v) return d;
    if (/^[0-9a-fA-F]{3,8}$/.test(v)) v = "#" + v;
    return /^[#a-zA-Z0-9(),.%\s]{1,40}$/.test(v) ? v : d;
  }
  function num(v, d, lo, hi) {
    const n = parseFloat(v);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : d;
  }
  function pick(v, allowed, d) { return allowed.includes(v) ? v : d; }
  function flag(v, d) { return v === null ? d : !["0", "false", "no", "off"].includes(v.toLowerCase()); }

  const font = P.get("font") || "";
  const cfg = {
    font: /^[\w\s,'".-]{1,80}$/.test(font) ? font : "",
    size: num(P.get("size"), 44, 8, 200),
    color: colour(P.get("color"), ""),
    outline: num(P.get("outline"), 3, 0, 20),
    outlineColor: colour(P.get("outline_color"), ""),
    bg: colour(P.get("bg"), ""),
    accent: colour(P.get("accent"), ""),
    lines: Math.round(num(P.get("lines"), 3, 1, 12)),
    width: num(P.get("width"), 80, 20, 100),
    fade: num(P.get("fade"), 5, 0, 600),
    pos: pick(P.get("pos"), ["bottom", "top", "middle"], "bottom"),
    align: pick(P.get("align"), ["center", "left", "right"], "center"),
    layout: pick(P.get("layout"), ["auto", "wide", "vertical"], "auto"),
    chat: flag(P.get("chat"), true),
    indicator: flag(P.get("indicator"), true),
    audio: flag(P.get("audio"), false),
  };
  const root = document.documentElement.style;
  if (cfg.font) root.setProperty("--font", cfg.font);
  root.setProperty("--size", cfg.size + "px");
  if (cfg.color) root.setProperty("--color", cfg.color);
  root.setProperty("--outline", cfg.outline + "px");
  if (cfg.outlineColor) root.setProperty("--outline-color", cfg.outlineColor);
  if (cfg.bg) root.setProperty("--bg", cfg.bg);
  if (cfg.accent) root.setProperty("--accent", cfg.accent);
  root.setProperty("--lines", String(cfg.lines));
  root.setProperty("--width", cfg.width + "vw");
  root.setProperty("--align", cfg.align);
  const layout = cfg.layout === "auto" ? (innerHeight > innerWidth ? "vertical" : "wide") : cfg.layout;
  document.body.classList.add("pos-" + cfg.pos, "align-" + cfg.align, "layout-" + layout);
  if (!cfg.indicator) document.body.classList.add("no-indicator");

  const $ = (id) => document.getElementById(id);
  const el = { stage: $("stage"), card: $("card"), badge: $("badge"), name: $("name"), paid: $("paid"), msg: $("msg"), lines: $("lines"), speaking: $("speaking") };

  // What happened, for anyone debugging a scene (and the tests).
  const trace = (window.vtuberOverlay = { connected: false, events: [], shown: [], cleared: [], audio: { received: 0, scheduled: [] }, config: cfg });
  function note(m) {
    trace.events.push({ type: m.type, turn_id: m.turn_id, index: m.index, at: Date.now() });
    if (trace.events.length > 500) trace.events.splice(0, 100);
  }

  let turn = null;
  let timers = [];
  let fadeTimer = null;

  function clearCaptions() {
    timers.forEach(clearTimeout);
    timers = [];
    if (el.lines.childElementCount) trace.cleared.push({ turn_id: turn, at: Date.now() });
    el.lines.replaceChildren();
  }
  function cancelFade() {
    if (fadeTimer !== null) clearTimeout(fadeTimer);
    fadeTimer = null;
    el.stage.classList.remove("faded");
  }
  function speaking(on) { el.speaking.classList.toggle("on", on); }

  function showInput(input) {
    if (!cfg.chat || !input || input.kind !== "chat") { el.card.hidden = true; return; }
    el.name.textContent = String(input.user || "");
    el.msg.textContent = String(input.text || "");
    el.msg.lang = scriptLang(String(input.text || ""));
    let paid = "";
    if (input.amount > 0) paid = `${input.source === "youtube" ? "Super Chat " : ""}${Number(input.amount).toFixed(2)} ${input.currency || ""}`.trim();
    else if (input.bits > 0) paid = `${input.bits} bits`;
    el.paid.textContent = paid;
    el.paid.hidden = !paid;
    const badge = input.moderator ? "MOD" : input.subscriber ? "SUB" : "";
    el.badge.textContent = badge;
    el.badge.hidden = !badge;
    el.card.classList.toggle("paid-card", !!paid);
    el.card.hidden = false;
  }

  function startReply(turnId, input) {
    cancelFade();
    if (turn !== turnId) { clearCaptions(); turn = turnId; }
    showInput(input);
  }

  function trim() {
    const lineHeight = parseFloat(getComputedStyle(el.lines).lineHeight) || cfg.size * 1.25;
    while (el.lines.childElementCount > 1 && el.lines.scrollHeight > cfg.lines * lineHeight + 2) el.lines.firstElementChild.remove();
  }

  // The language a text is written in, from its script: the browser then picks the right
  // CJK glyphs from the font stack (Han characters are drawn differently in ko, ja and zh).
  function scriptLang(text) {
    if (/[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]/.test(text)) return "ko";
    if (/[\u3040-\u30ff]/.test(text)) return "ja";
    if (/[\u4e00-\u9fff]/.test(text)) return "zh";
    return "";
  }

  function addClause(m, elapsed) {
    if (turn !== m.turn_id) startReply(m.turn_id, null);
    const span = document.createElement("span");
    span.className = "clause";
    const lang = scriptLang(String(m.text || ""));
    if (lang) span.lang = lang;
    span.dataset.turn = String(m.turn_id);
    span.dataset.index = String(m.index);
    const words = Array.isArray(m.words) && m.words.length ? m.words : [[String(m.text || ""), 0, 0]];
    for (const [w, start] of words) {
      const ws = document.createElement("span");
      ws.className = "w";
      ws.textContent = String(w) + " ";
      if (start <= elapsed) ws.classList.add("on");
      else timers.push(setTimeout(() => ws.classList.add("on"), (start - elapsed) * 1000));
      span.append(ws);
    }
    el.lines.append(span);
    trim();
    trace.shown.push({ turn_id: m.turn_id, index: m.index, text: String(m.text || ""), at: Date.now() });
  }

  function finish(turnId, fadeIn) {
    if (turnId !== turn) return;
    speaking(false);
    if (fadeTimer !== null) clearTimeout(fadeTimer);
    fadeTimer = setTimeout(() => {
      el.stage.classList.add("faded");
      fadeTimer = setTimeout(() => {
        fadeTimer = null;
        clearCaptions();
        el.card.hidden = true;
        turn = null;
        el.stage.classList.remove("faded");
      }, 550);
    }, fadeIn * 1000);
  }

  // --- audio (opt-in: ?audio=1): each clause's samples, started as the clause is heard ---
  let ctx = null;
  let offset = null; // audio-context seconds minus session seconds
  const buffers = new Map();
  const pending = new Map();
  const sources = new Map();
  function audioContext() {
    if (!ctx) ctx = new AudioContext();
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    return ctx;
  }
  function onAudio(m) {
    const raw = atob(m.pcm);
    const n = raw.length >> 1;
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v = raw.charCodeAt(2 * i) | (raw.charCodeAt(2 * i + 1) << 8);
      if (v >= 32768) v -= 65536;
      f[i] = v / 32768;
    }
    const c = audioContext();
    const buf = c.createBuffer(1, Math.max(n, 1), m.sample_rate);
    buf.copyToChannel(f, 0);
    trace.audio.received++;
    const key = m.turn_id + ":" + m.index;
    const clause = pending.get(key);
    if (clause) { pending.delete(key); play(key, clause, buf); }
    else {
      buffers.set(key, buf);
      if (buffers.size > 64) buffers.delete(buffers.keys().next().value);
    }
  }
  function onClauseAudio(m) {
    const key = m.turn_id + ":" + m.index;
    const buf = buffers.get(key);
    if (buf) { buffers.delete(key); play(key, m, buf); }
    else pending.set(key, m);
  }
  function play(key, m, buf) {
    const c = audioContext();
    let at = m.t + (offset ?? 0);
    if (offset === null || Math.abs(at - c.currentTime) > 1.0) {
      offset = c.currentTime + 0.05 - m.t; // the session clock mapped onto the audio clock
      at = m.t + offset;
    }
    const skip = Math.max(0, c.currentTime - at);
    if (skip >= buf.duration) return;
    const s = c.createBufferSource();
    s.buffer = buf;
    s.connect(c.destination);
    s.start(Math.max(at, c.currentTime), skip);
    const list = sources.get(m.turn_id) || [];
    list.push(s);
    sources.set(m.turn_id, list);
    s.onended = () => { const l = sources.get(m.turn_id); if (l) l.splice(l.indexOf(s), 1); };
    trace.audio.scheduled.push({ key, at, skip, duration: buf.duration, state: c.state, wall: Date.now() });
  }
  function stopAudio(turnId) {
    for (const s of sources.get(turnId) || []) { try { s.stop(); } catch (e) { /* already over */ } }
    sources.delete(turnId);
    for (const key of [...buffers.keys(), ...pending.keys()]) {
      if (key.startsWith(turnId + ":")) { buffers.delete(key); pending.delete(key); }
    }
  }

  function applyState(s) {
    if (!s || s.turn_id === null || s.turn_id === undefined) { clearCaptions(); el.card.hidden = true; speaking(false); turn = null; return; }
    clearCaptions();
    turn = null;
    startReply(s.turn_id, s.input);
    for (const c of s.clauses || []) addClause({ ...c, turn_id: s.turn_id }, Infinity);
    speaking(!!s.speaking);
    if (!s.speaking) finish(s.turn_id, cfg.fade);
  }

  function onMessage(m) {
    if (m.v !== VERSION) return;
    if (m.type !== "audio") note(m);
    switch (m.type) {
      case "hello":
        offset = null; // a new connection may be a new session: its clock starts again
        applyState(m.state);
        break;
      case "state":
        applyState(m.state);
        break;
      case "playback_started":
        startReply(m.turn_id, m.input);
        speaking(true);
        break;
      case "clause":
        if (turn !== m.turn_id) startReply(m.turn_id, null);
        speaking(true);
        addClause(m, 0);
        if (cfg.audio) onClauseAudio(m);
        break;
      case "playback_finished":
        if (m.cut_short) stopAudio(m.turn_id);
        finish(m.turn_id, cfg.fade);
        break;
      case "cancelled":
        stopAudio(m.turn_id);
        break;
      case "withdrawn": // a moderator took the message back: off the screen at once
        stopAudio(m.turn_id);
        if (turn === m.turn_id) {
          cancelFade();
          clearCaptions();
          el.card.hidden = true;
          speaking(false);
          turn = null;
        }
        break;
      case "audio":
        if (cfg.audio) onAudio(m);
        break;
    }
  }

  function connect() {
    const q = new URLSearchParams();
    if (P.get("token")) q.set("token", P.get("token"));
    if (cfg.audio) q.set("audio", "1");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${q}`);
    ws.onopen = () => { trace.connected = true; };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m && typeof m === "object") onMessage(m);
    };
    ws.onclose = () => { trace.connected = false; setTimeout(connect, 1000); };
  }
  // Demo mode (the settings page's preview): a sample reply on a loop, no server events.
  function demo() {
    const clauses = ["Oh, that is easy!", "I love cozy farming games,", "and this one has the cutest chickens."];
    let turnId = 1000;
    const run = () => {
      const id = ++turnId;
      onMessage({ v: VERSION, type: "playback_started", turn_id: id, t: 0, input: { kind: "chat", user: "PixelPaws", text: "what game is this? it looks so relaxing", bits: 250, amount: 0, currency: "", subscriber: true, moderator: false } });
      let at = 0;
      clauses.forEach((text, index) => {
        const duration = 0.09 * text.length;
        const words = [];
        let w0 = 0;
        const parts = text.split(" ");
        const total = parts.reduce((n, p) => n + p.length + 1, 0);
        for (const p of parts) { const d = (duration * (p.length + 1)) / total; words.push([p, w0, w0 + d]); w0 += d; }
        setTimeout(() => onMessage({ v: VERSION, type: "clause", turn_id: id, index, t: at, text, duration, words }), at * 1000);
        at += duration;
      });
      setTimeout(() => onMessage({ v: VERSION, type: "playback_finished", turn_id: id, t: at, cut_short: false, reason: "" }), at * 1000);
      setTimeout(run, (at + cfg.fade + 1.5) * 1000);
    };
    run();
  }

  if (P.get("demo") === "1") { cfg.audio = false; demo(); return; }
  if (cfg.audio) audioContext();
  connect();
})();

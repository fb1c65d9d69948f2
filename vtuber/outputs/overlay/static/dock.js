// The control dock: state from the overlay WebSocket (role=dock), buttons as same-origin
// POSTs carrying the dock token. Everything shown goes in as text (textContent).
(() => {
  "use strict";
  const P = new URLSearchParams(location.search);
  const token = P.get("dock") || "";
  const $ = (id) => document.getElementById(id);
  const trace = (window.vtuberDock = { connected: false, states: 0, calls: [] });
  let muted = false;
  let current = null;

  function text(tag, value, cls) {
    const e = document.createElement(tag);
    e.textContent = value === null || value === undefined ? "" : String(value);
    if (cls) e.className = cls;
    return e;
  }
  function showError(msg) {
    const e = $("error");
    e.textContent = msg;
    e.hidden = !msg;
    if (msg) setTimeout(() => { if (e.textContent === msg) e.hidden = true; }, 6000);
  }

  async function call(action, body) {
    try {
      const r = await fetch(`/api/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Vtuber-Token": token },
        body: JSON.stringify(body || {}),
      });
      trace.calls.push({ action, status: r.status });
      if (!r.ok) {
        let why = `${action}: refused (${r.status})`;
        try { const j = await r.json(); if (j.error) why = j.error; } catch (e) { /* plain text */ }
        showError(why);
      }
      return r.status;
    } catch (e) {
      showError(`${action}: ${e}`);
      return 0;
    }
  }

  $("skip").onclick = () => call("skip");
  $("mute").onclick = () => call("mute", { muted: !muted });
  $("persona").onchange = (e) => call("persona", { name: e.target.value });
  // Push-to-talk: the streamer is heard while the button is held; letting go ends the turn.
  const talk = $("talk");
  let talking = false;
  const press = (down) => (e) => {
    e.preventDefault();
    if (down === talking) return;
    talking = down;
    talk.classList.toggle("on", down);
    call("talk", { pressed: down });
  };
  talk.addEventListener("pointerdown", press(true));
  for (const ev of ["pointerup", "pointercancel", "pointerleave"]) talk.addEventListener(ev, press(false));

  function renderReply(reply) {
    current = reply && reply.turn_id !== null && reply.turn_id !== undefined ? reply : null;
    const input = current && current.input;
    $("now-who").textContent = input ? `${input.user}${input.kind === "chat" ? "" : ` (${input.kind})`}` : "";
    $("now-said").textContent = input ? input.text : "";
    $("now-reply").textContent = current ? (current.clauses || []).map((c) => c.text).join(" ") : "";
    $("skip").disabled = !(current && current.speaking);
  }

  let last = { dropped: [] };
  function render(s) {
    last = s;
    trace.states++;
    renderReply(s.reply);
    muted = !!s.muted;
    const mute = $("mute");
    mute.textContent = muted ? "Unmute" : "Mute";
    mute.classList.toggle("on", muted);
    const sel = $("persona");
    const names = s.personas || [];
    if (sel.dataset.names !== names.join("\n")) {
      sel.replaceChildren(...names.map((n) => { const o = text("option", n); o.value = n; return o; }));
      sel.dataset.names = names.join("\n");
    }
    if (s.persona && document.activeElement !== sel) {
      const match = names.find((n) => n.toLowerCase() === String(s.persona).toLowerCase());
      if (match) sel.value = match;
      else {
        const o = text("option", s.persona);
        o.value = "";
        o.disabled = true;
        sel.prepend(o);
        sel.value = "";
        sel.dataset.names = "";
      }
    }
    const rows = (s.queue || []).map((q) => {
      const tr = document.createElement("tr");
      tr.append(text("td", q.score === null ? q.kind : q.score.toFixed(2), "score"), text("td", q.user), text("td", q.text), text("td", `${Math.round(q.age_s)}s`, "age"));
      const td = document.createElement("td");
      if (q.kind === "chat" && q.id) {
        const b = text("button", "next");
        b.title = "answer this one next";
        b.dataset.id = q.id;
        b.onclick = () => call("answer_next", { id: q.id });
        td.append(b);
      }
      tr.append(td);
      return tr;
    });
    $("queue").tBodies[0].replaceChildren(...rows);
    $("queue-n").textContent = rows.length ? `(${rows.length})` : "";
    $("dropped").replaceChildren(...(s.dropped || []).slice().reverse().map((d) => {
      const li = text("li", `${d.user}: ${d.text} `);
      li.append(text("span", `(${d.reason})`, "why"));
      return li;
    }));
    // What is degraded right now (a lost device, a backend on its fallback): shown until it is well again.
    const warnings = s.warnings || [];
    $("warnings").hidden = !warnings.length;
    $("warnings").replaceChildren(...warnings.map((w) => text("div", w)));
    const lat = s.latency || {};
    $("latency").textContent = lat.turn_id === null || lat.turn_id === undefined ? "no reply yet" : `last reply: ready ${lat.ready_ms ?? "-"} ms, heard ${lat.heard_ms ?? "-"} ms`;
    const counters = Object.entries(s.counters || {}).sort();
    if (s.overlay) counters.push(["overlay clients", s.overlay.clients], ["overlay drops", s.overlay.drops]);
    $("counters").replaceChildren(...counters.flatMap(([k, v]) => [text("dt", k.replace(/_/g, " ")), text("dd", v)]));
  }

  function onMessage(m) {
    if (m.v !== 1) return;
    if (m.type === "dock_state") render(m.state);
    else if (m.type === "dropped") render({ ...last, dropped: [...(last.dropped || []), m].slice(-20) });
    else if (m.type === "hello" || m.type === "state") renderReply(m.state);
    else if (m.type === "playback_started") renderReply({ turn_id: m.turn_id, input: m.input, clauses: [], speaking: true });
    else if (m.type === "clause" && current && current.turn_id === m.turn_id) {
      current.clauses.push({ text: m.text });
      renderReply(current);
    } else if (m.type === "withdrawn" && current && current.turn_id === m.turn_id) {
      renderReply(null);
    } else if (m.type === "playback_finished" && current && current.turn_id === m.turn_id) {
      current.speaking = false;
      renderReply(current);
    }
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?role=dock&dock=${encodeURIComponent(token)}`);
    ws.onopen = () => { trace.connected = true; $("status").textContent = "live"; $("status").className = "status live"; };
    ws.onmessage = (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { /* not ours */ } };
    ws.onclose = () => {
      trace.connected = false;
      $("status").textContent = token ? "reconnecting" : "no token in the URL";
      $("status").className = "status";
      setTimeout(connect, 1000);
    };
  }
  connect();
})();

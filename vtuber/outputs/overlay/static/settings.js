// The overlay's settings page: the form becomes the overlay's URL parameters; the preview
// is the overlay itself in demo mode (a sample reply on a loop, no server events needed).
(() => {
  "use strict";
  const form = document.getElementById("form");
  const token = new URLSearchParams(location.search).get("token");
  const defaults = { size: "44", color: "#ffffff", outline: "3", outline_color: "#000000", accent: "#ff5fa2", lines: "3", width: "80", pos: "bottom", align: "center", layout: "auto", fade: "5" };
  function params() {
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") {
        const on = el.checked;
        if (el.name === "audio" ? on : !on) q.set(el.name, on ? "1" : "0");
        continue;
      }
      let v = el.value.trim();
      if (!v || defaults[el.name] === v) continue;
      if (v.startsWith("#")) v = v.slice(1);
      q.set(el.name, v);
    }
    return q;
  }
  let timer = null;
  function update() {
    const q = params();
    const s = q.toString();
    document.getElementById("url").value = `${location.origin}/${s ? "?" + s : ""}`;
    q.set("demo", "1");
    q.delete("audio");
    clearTimeout(timer);
    timer = setTimeout(() => { document.getElementById("preview").src = "/?" + q.toString(); }, 250);
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  document.getElementById("copy").onclick = () => {
    const u = document.getElementById("url");
    u.select();
    if (navigator.clipboard) navigator.clipboard.writeText(u.value).catch(() => document.execCommand("copy"));
    else document.execCommand("copy");
  };
  update();
})();

// pixelforge browse: selection, keyboard and decisions. Every write is a POST with the page's token;
// the page is updated from the server's answer (text set with textContent, never as HTML).
(() => {
  "use strict";
  const token = document.querySelector('meta[name="pixelforge-token"]').content;
  const page = document.body.dataset.page;
  const status = document.getElementById("status");
  const selected = new Set();
  let focus = -1;

  const tiles = () => Array.from(document.querySelectorAll("#grid .tile"));
  const classes = Array.from(document.querySelectorAll(".relabel button[data-class]")).map((b) => b.dataset.class);

  function say(message, bad) {
    status.textContent = message;
    status.className = bad ? "bad" : "";
  }

  function byKey(key) {
    return document.querySelectorAll(`[data-key="${CSS.escape(key)}"]`);
  }

  function show(images, counts) {
    for (const [key, s] of Object.entries(images || {})) {
      for (const el of byKey(key)) {
        if (el === document.body) continue;
        el.classList.toggle("excluded", s.excluded);
        el.classList.toggle("checked", s.checked);
        el.classList.toggle("relabelled", s.relabelled);
        const lab = el.querySelector(".lab");
        if (lab) lab.textContent = s.label;
        const orig = el.querySelector(".orig");
        if (orig) orig.textContent = s.relabelled ? s.original : "";
      }
    }
    for (const [what, n] of Object.entries(counts || {})) {
      const el = document.querySelector(`[data-count="${what}"]`);
      if (el) el.textContent = n;
    }
  }

  async function post(url, body) {
    let answer;
    try {
      const response = await fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-pixelforge-token": token },
        body: JSON.stringify(body),
      });
      answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
    } catch (err) {
      say(`not saved: ${err.message}`, true);
      return null;
    }
    show(answer.images, answer.counts);
    say(answer.message + (url.endsWith("/decide") ? " (u to undo)" : ""));
    return answer;
  }

  function targets() {
    if (page === "image") return [document.body.dataset.key];
    if (selected.size) return Array.from(selected);
    const t = tiles()[focus];
    return t ? [t.dataset.key] : [];
  }

  function act(action, value) {
    if (action === "undo") return post("/api/undo", {});
    const keys = targets();
    if (!keys.length) return say("select images first: click them, or move with the arrows and press space", true);
    return post("/api/decide", { keys, action, value });
  }

  // ---- selection and focus (the grid) ----
  function paintSelection() {
    for (const t of tiles()) t.classList.toggle("selected", selected.has(t.dataset.key));
    const info = document.getElementById("selection");
    if (info) info.textContent = selected.size ? `${selected.size} selected (esc clears)` : "";
  }

  function moveTo(i) {
    const all = tiles();
    if (!all.length) return;
    focus = Math.max(0, Math.min(all.length - 1, i));
    all[focus].focus();
  }

  function toggle(i) {
    const t = tiles()[i];
    if (!t) return;
    const key = t.dataset.key;
    if (selected.has(key)) selected.delete(key); else selected.add(key);
    paintSelection();
  }

  function columns() {
    const all = tiles();
    if (!all.length) return 1;
    const top = all[0].offsetTop;
    const n = all.findIndex((t) => t.offsetTop !== top);
    return n === -1 ? all.length : n;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-class], button[data-action], button[data-keep]");
    if (button) {
      if (button.dataset.class) act("relabel", button.dataset.class);
      else if (button.dataset.keep) post("/api/decide", { keys: [button.dataset.keep], action: "keep" });
      else act(button.dataset.action);
      return;
    }
    const tile = event.target.closest("#grid .tile");
    if (tile && !event.target.closest("a")) {
      const i = tiles().indexOf(tile);
      focus = i;
      toggle(i);
    }
  });

  document.addEventListener("dblclick", (event) => {
    const tile = event.target.closest("#grid .tile");
    if (tile) window.location = tile.querySelector("a.open").href;
  });

  document.addEventListener("focusin", (event) => {
    const i = tiles().indexOf(event.target);
    if (i !== -1) focus = i;
  });

  const relabelTo = document.getElementById("relabel-to");
  if (relabelTo) {
    relabelTo.addEventListener("change", () => {
      if (relabelTo.value) act("relabel", relabelTo.value);
      relabelTo.value = "";
      relabelTo.blur();
    });
  }

  const filters = document.getElementById("filters");
  if (filters) {
    for (const el of filters.querySelectorAll("select")) el.addEventListener("change", () => filters.requestSubmit());
  }

  function follow(id) {
    const link = document.getElementById(id);
    if (link) window.location = link.href;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest("input, select, textarea");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    const grid = page === "grid";
    let handled = true;
    if (/^[0-9]$/.test(key)) {
      const name = classes[key === "0" ? 9 : Number(key) - 1];
      if (name !== undefined) act("relabel", name); else say(`no class on key ${key}`, true);
    } else if (key === "x") act("exclude");
    else if (key === "i") act("include");
    else if (key === "c") act("check");
    else if (key === "u") act("undo");
    else if (key === "r" && relabelTo) relabelTo.focus();
    else if (key === "k") {
      const keys = targets();
      if (keys.length !== 1) say("k keeps one image: focus or open the one to keep", true);
      else post("/api/decide", { keys, action: "keep" });
    } else if (grid && key === " ") { if (focus < 0) moveTo(0); toggle(focus); }
    else if (grid && key === "a") { for (const t of tiles()) selected.add(t.dataset.key); paintSelection(); }
    else if (grid && key === "Escape") { selected.clear(); paintSelection(); say(""); }
    else if (grid && key === "ArrowRight") moveTo(focus + 1);
    else if (grid && key === "ArrowLeft") moveTo(focus - 1);
    else if (grid && key === "ArrowDown") moveTo(focus < 0 ? 0 : focus + columns());
    else if (grid && key === "ArrowUp") moveTo(focus - columns());
    else if (grid && key === "Enter" && focus >= 0) window.location = tiles()[focus].querySelector("a.open").href;
    else if (grid && key === "n") follow("next-page");
    else if (grid && key === "p") follow("prev-page");
    else if (!grid && (key === "ArrowRight" || key === "n")) follow("next");
    else if (!grid && (key === "ArrowLeft" || key === "p")) follow("prev");
    else if (!grid && key === "Escape") follow("back");
    else handled = false;
    if (handled) event.preventDefault();
  });

  // bars of the top-k table: widths set here (the page's CSP allows no inline styles)
  for (const bar of document.querySelectorAll(".bar[data-width]")) bar.style.width = `${bar.dataset.width}px`;

  // while the model predicts, show its progress and reload when done
  const progress = document.getElementById("predicting");
  if (progress) {
    const timer = setInterval(async () => {
      const s = await (await fetch("/api/status")).json();
      if (!s.predictions || s.predictions.error) return clearInterval(timer);
      if (s.predictions.ready) { clearInterval(timer); window.location.reload(); return; }
      const span = document.getElementById("progress");
      if (span) span.textContent = `${Math.round(s.predictions.progress * 100)}%`;
    }, 1500);
  }
})();

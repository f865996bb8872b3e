// The saener web page: annotate text through /v1/annotate and explain each entity with
// the features behind it (/v1/features/{id}). Plain DOM, no dependencies, works offline.
"use strict";

const EXAMPLE =
  "Maria Keller, a researcher at the University of Geneva, told Reuters on Monday that the " +
  "World Health Organization would open a new office in Nairobi next spring.\n" +
  "Shares of Nordwind Energy rose 4 percent in Frankfurt after the company agreed to supply " +
  "turbines to a wind farm off the coast of Scotland.";

const COLORS = ["#aecbfa", "#fdd663", "#a8dab5", "#f6aea9", "#d7aefb", "#fcc934", "#8ab4f8", "#f28b82"];

const $ = (id) => document.getElementById(id);
let profiles = [];
let current = null; // {profile, text, entities}
let pinned = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function colorOf(label) {
  const p = profiles.find((x) => x.name === $("profile").value);
  const i = p ? p.labels.indexOf(label) : -1;
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

function showError(message) {
  const box = $("error");
  box.hidden = !message;
  box.textContent = message || "";
}

// A server started with a token answers 401 until the page sends it: ask once, keep it for
// this tab only.
async function api(path, options = {}, asked = false) {
  const token = sessionStorage.getItem("saener-token");
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !asked) {
    const entered = prompt("This saener server needs its access token:");
    if (entered) {
      sessionStorage.setItem("saener-token", entered.trim());
      return api(path, options, true);
    }
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

async function loadProfiles() {
  try {
    const body = await api("/v1/profiles");
    profiles = body.profiles;
    const select = $("profile");
    select.replaceChildren(...profiles.map((p) => el("option", { value: p.name }, p.name)));
    select.value = body.default;
    showLabels();
  } catch (e) {
    showError(`Could not load profiles: ${e.message}`);
  }
}

function showLabels() {
  const p = profiles.find((x) => x.name === $("profile").value);
  $("labels").textContent = p ? `types: ${p.labels.join(", ")}` : "";
  const legend = $("legend");
  legend.replaceChildren(
    ...(p ? p.labels : []).map((label) => {
      const chip = el("span", {}, label);
      chip.style.setProperty("--c", colorOf(label));
      return chip;
    })
  );
}

async function annotate(event) {
  event.preventDefault();
  showError("");
  const text = $("text").value;
  if (!text.trim()) {
    showError("Enter some text first.");
    return;
  }
  const profile = $("profile").value;
  $("status").textContent = "Annotating…";
  $("annotate").disabled = true;
  try {
    const body = await api("/v1/annotate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ profile, documents: [{ id: "input", text }] }),
    });
    current = { profile, text, entities: body.documents[0].entities };
    render();
    const n = current.entities.length;
    $("status").textContent = `${n} ${n === 1 ? "entity" : "entities"} found.`;
  } catch (e) {
    $("status").textContent = "";
    showError(e.message);
  } finally {
    $("annotate").disabled = false;
  }
}

// Offsets are Unicode code points; JavaScript strings index UTF-16 units, so slice an
// array of code points.
function render() {
  const chars = Array.from(current.text);
  const out = [];
  let at = 0;
  current.entities.forEach((entity, i) => {
    out.push(chars.slice(at, entity.start).join(""));
    const mark = el(
      "mark",
      {
        class: "entity",
        tabindex: "0",
        role: "button",
        "aria-pressed": "false",
        "data-index": String(i),
        "data-label": entity.label,
        "aria-label": `${entity.text}: ${entity.label}, score ${entity.score.toFixed(2)}`,
      },
      chars.slice(entity.start, entity.end).join("")
    );
    mark.style.setProperty("--c", colorOf(entity.label));
    mark.addEventListener("mouseenter", () => pinned === null && showEvidence(i));
    mark.addEventListener("focus", () => pinned === null && showEvidence(i));
    mark.addEventListener("click", () => pin(i));
    mark.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pin(i);
      }
    });
    out.push(mark);
    at = entity.end;
  });
  out.push(chars.slice(at).join(""));
  const result = $("result");
  result.classList.toggle("muted", current.entities.length === 0);
  result.replaceChildren(...(current.entities.length ? out : ["No entities found."]));
  pinned = null;
}

function pin(i) {
  pinned = pinned === i ? null : i;
  document.querySelectorAll("mark.entity").forEach((m) => {
    m.setAttribute("aria-pressed", String(Number(m.dataset.index) === pinned));
  });
  showEvidence(i);
}

function showEvidence(i) {
  const entity = current.entities[i];
  // Naive-Bayes profiles rank evidence by its summed log-odds for the span's tags against O.
  const logOdds = entity.evidence.some((ev) => ev.log_odds !== undefined);
  const rows = entity.evidence.map((ev) =>
    el(
      "tr",
      {},
      el("td", {}, el("button", { type: "button", class: "feature-link", onclick: () => showFeature(ev.feature) }, `#${ev.feature}`)),
      el("td", { class: "num" }, ev.activation.toFixed(1)),
      ...(logOdds ? [el("td", { class: "num" }, (ev.log_odds ?? 0).toFixed(2))] : []),
      el("td", { class: "num" }, bar(ev.precision), ev.precision.toFixed(2))
    )
  );
  const headers = ["activation", ...(logOdds ? ["log-odds vs O"] : []), `precision for ${entity.label}`];
  $("evidence").replaceChildren(
    el("h2", { id: "evidence-title" }, "Evidence"),
    el("p", {}, el("strong", {}, entity.text), ` — ${entity.label}, score ${entity.score.toFixed(2)}, characters ${entity.start}–${entity.end}`),
    el(
      "table",
      { "aria-label": `Features that voted ${entity.label}` },
      el("thead", {}, el("tr", {}, el("th", {}, "feature"), ...headers.map((h) => el("th", { class: "num" }, h)))),
      el("tbody", {}, ...rows)
    )
  );
}

function bar(fraction) {
  const b = el("span", { class: "bar", "aria-hidden": "true" });
  b.style.width = `${Math.round(fraction * 4)}rem`;
  return b;
}

async function showFeature(id) {
  const profile = current ? current.profile : $("profile").value;
  const panel = $("feature");
  panel.replaceChildren(el("h2", { id: "feature-title" }, `Feature #${id}`), el("p", { class: "muted" }, "Loading…"));
  try {
    const f = await api(`/v1/features/${id}?profile=${encodeURIComponent(profile)}`);
    const rowsOf = (rows) =>
      rows.map((r) =>
        el(
          "tr",
          {},
          el("td", {}, r.type),
          el("td", { class: "num" }, bar(r.precision), r.precision.toFixed(2)),
          el("td", { class: "num" }, String(r.hits)),
          el("td", { class: "num" }, String(r.support)),
          el("td", { class: "num" }, (f.base_rates[r.type] ?? 0).toFixed(3))
        )
      );
    const head = () =>
      el("thead", {}, el("tr", {}, ...["type", "precision", "hits", "support", "base rate"].map((h, k) => el("th", k ? { class: "num" } : {}, h))));
    const parts = [
      el("h2", { id: "feature-title" }, `Feature #${f.feature}`),
      el("p", { class: "muted" }, `Profile ${f.profile}. Precision: the fraction of calibration tokens it fires on that lie inside such entities.`),
      el("table", { "aria-label": "Precision per type" }, head(), el("tbody", {}, ...rowsOf(f.types))),
    ];
    if (f.boundary.length) {
      parts.push(el("h3", {}, "Marks the first token of"), el("table", { "aria-label": "Boundary precision" }, head(), el("tbody", {}, ...rowsOf(f.boundary))));
    }
    parts.push(el("h3", {}, "Top contexts in the calibration data"));
    if (f.contexts.length) {
      parts.push(
        el(
          "ol",
          { class: "contexts" },
          ...f.contexts.map((c) => {
            const chars = Array.from(c.text);
            return el(
              "li",
              {},
              chars.slice(0, c.start).join(""),
              el("mark", {}, chars.slice(c.start, c.end).join("")),
              chars.slice(c.end).join(""),
              el("span", { class: "muted" }, ` (${c.label}, activation ${c.activation.toFixed(1)})`)
            );
          })
        )
      );
    } else {
      parts.push(el("p", { class: "muted" }, "This profile stores no contexts."));
    }
    panel.replaceChildren(...parts);
  } catch (e) {
    panel.replaceChildren(el("h2", { id: "feature-title" }, `Feature #${id}`), el("p", { role: "alert" }, e.message));
  }
}

function loadFile(event) {
  const file = event.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => ($("text").value = reader.result);
  reader.onerror = () => showError(`Could not read ${file.name}.`);
  reader.readAsText(file);
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", annotate);
  $("example").addEventListener("click", () => ($("text").value = EXAMPLE));
  $("file").addEventListener("change", loadFile);
  $("profile").addEventListener("change", showLabels);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && pinned !== null) pin(pinned);
  });
  loadProfiles();
});

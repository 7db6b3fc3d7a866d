// The status panel: polls /api/status (public, read-only) and renders it; no framework.
"use strict";

const REFRESH_MS = 3000;
const SNAPSHOTS_REFRESH_MS = 10000;
const STATE_CLASS = {
  completed: "done", done: "done", ready: "done", succeeded: "done",
  running: "running", processing: "running", pending: "pending", uploaded: "pending",
  failed: "failed", terminated: "failed", timed_out: "failed", canceled: "failed",
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pill(state, label) {
  const cls = STATE_CLASS[state] || "unknown";
  return el("span", { class: `pill pill-${cls}`, "data-state": state }, label || (cls === "done" ? "done" : state));
}

function setPill(node, state, label) {
  const fresh = pill(state, label);
  node.className = fresh.className;
  node.dataset.state = state;
  node.textContent = fresh.textContent;
}

function seconds(value) {
  return typeof value === "number" ? `${value.toFixed(1)} s` : "";
}

function renderProvision(provision) {
  const body = document.querySelector("#steps tbody");
  body.replaceChildren();
  const state = document.getElementById("provision-state");
  if (!provision) {
    setPill(state, "unknown", "unavailable");
    return;
  }
  setPill(state, provision.state, provision.state.replace("_", " "));
  if (!provision.steps.length) {
    body.append(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "not provisioned yet")));
  }
  for (const step of provision.steps) {
    const result = step.error ? step.error : step.outcome || "";
    // A reconciling step's full diff: its result lists 50 changes at most.
    const diff = step.diff_url
      ? el("a", { href: step.diff_url, target: "_blank", rel: "noopener", class: "diff-link",
        title: "every change this step found (JSON)" }, "diff")
      : null;
    body.append(
      el("tr", { "data-step": step.step },
        el("td", {}, el("code", {}, step.step)),
        el("td", {}, pill(step.state)),
        el("td", { class: step.error ? "" : "num" }, result, diff && " · ", diff),
        el("td", { class: "num" }, step.attempts),
        el("td", { class: "num duration" }, seconds(step.duration_seconds)),
      ),
    );
    // What the step accepted but a person should know (e.g. fields Keycloak 24+ drops).
    for (const warning of step.warnings || []) {
      body.append(
        el("tr", { class: "warning", "data-step-warning": step.step },
          el("td", { colspan: 5 }, el("span", { class: "warning-mark" }, "warning"), " ", warning)),
      );
    }
  }
}

function renderQueues(queues) {
  const box = document.getElementById("queues");
  box.replaceChildren();
  if (!queues) {
    box.append(el("p", { class: "empty" }, "Temporal unavailable"));
    return;
  }
  for (const queue of queues) {
    const n = queue.pollers.length;
    const item = el("div", { class: "queue", "data-queue": queue.name },
      el("div", { class: "queue-name" }, el("code", {}, queue.name),
        pill(n ? "completed" : "pending", `${n} worker${n === 1 ? "" : "s"}`)));
    for (const poller of queue.pollers) item.append(el("div", { class: "poller" }, poller.identity));
    box.append(item);
  }
}

// The team's card (environment file `api.panel_card`): its title, its items, its empty text.
function renderCard(card) {
  const section = document.getElementById("team-card");
  section.hidden = !card;
  if (!card) return;
  document.getElementById("team-card-title").textContent = card.title;
  const grid = document.getElementById("team-items");
  grid.replaceChildren();
  const items = card.items;
  document.getElementById("team-card-count").textContent = items ? `${items.length} shown` : "";
  if (!items || !items.length) {
    grid.append(el("p", { class: "empty" }, items ? card.empty : "unavailable"));
    return;
  }
  for (const item of items) {
    const image = item.image_url
      ? el("img", { src: item.image_url, alt: item.label, loading: "lazy" })
      : el("div", { class: "image-missing" }, "no image");
    const meta = el("div", { class: "item-meta" }, el("span", { title: item.label }, item.label));
    if (item.status) meta.append(pill(item.status, item.status));
    grid.append(el("div", { class: "item", "data-item": item.id }, image, meta));
  }
}

function renderDrift(drift) {
  const body = document.querySelector("#drift tbody");
  body.replaceChildren();
  const state = document.getElementById("drift-state");
  if (!drift) {
    setPill(state, "unknown", "unavailable");
    return;
  }
  if (!drift.watching) {
    setPill(state, "pending", "not watching");
    body.append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "provisioning registers the drift watch")));
    return;
  }
  const lost = drift.data_loss.length ? ` · data loss: ${drift.data_loss.join(", ")}` : "";
  if (!drift.objects.length && !lost) {
    setPill(state, drift.checked_at ? "completed" : "pending", drift.checked_at ? "no drift" : "not checked yet");
    return;
  }
  setPill(state, "failed", `${drift.objects.length} drifted${lost}`);
  for (const item of drift.objects) {
    const since = item.since ? new Date(item.since).toLocaleTimeString() : "";
    body.append(
      el("tr", { "data-drift": `${item.step} ${item.object}` },
        el("td", {}, el("code", {}, item.object)),
        el("td", {}, item.change),
        el("td", {}, item.fields.join(", ")),
        el("td", { class: "num" }, since),
      ),
    );
  }
}

function renderSummary(status) {
  const ok = status.provision && status.provision.state === "completed";
  const workers = (status.queues || []).every((q) => q.pollers.length > 0);
  const summary = document.getElementById("summary");
  if (ok && workers) setPill(summary, "completed", "environment ready");
  else if (status.provision && status.provision.state === "failed") setPill(summary, "failed", "provisioning failed");
  else setPill(summary, "pending", "not ready yet");
}

async function refresh() {
  try {
    const resp = await fetch("/api/status", { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const status = await resp.json();
    renderProvision(status.provision);
    renderQueues(status.queues);
    renderCard(status.card);
    renderDrift(status.drift);
    renderSummary(status);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  } catch (err) {
    setPill(document.getElementById("summary"), "failed", `API unreachable (${err.message})`);
  }
}

function mib(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function renderSnapshots(list) {
  const body = document.querySelector("#snapshots tbody");
  body.replaceChildren();
  if (!list) {
    body.append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "snapshots unavailable")));
    return;
  }
  if (!list.snapshots.length) {
    body.append(el("tr", {}, el("td", { colspan: 4, class: "empty" }, "none yet — conceptor snapshot save NAME")));
  }
  for (const snap of list.snapshots.slice().reverse()) {
    const parts = `${snap.databases.length} db · ${snap.buckets.length} buckets · ${snap.realms.length} realms`;
    const size = snap.databases.reduce((n, d) => n + d.bytes, 0) + snap.buckets.reduce((n, b) => n + b.bytes, 0)
      + snap.realms.reduce((n, r) => n + r.bytes, 0);
    body.append(
      el("tr", { "data-snapshot": snap.name },
        el("td", {}, el("code", {}, snap.name)),
        el("td", { class: "num" }, new Date(snap.created_at).toLocaleString()),
        el("td", { class: "num" }, mib(size)),
        el("td", {}, parts),
      ),
    );
  }
}

async function refreshSnapshots() {
  try {
    const resp = await fetch("/api/snapshots", { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    renderSnapshots(await resp.json());
  } catch (err) {
    renderSnapshots(null);
  }
}

async function loadLinks() {
  const list = document.getElementById("links");
  try {
    const resp = await fetch("/api/links");
    const data = await resp.json();
    list.replaceChildren(...data.links.map((link) =>
      el("li", {}, el("a", { href: link.url, target: "_blank", rel: "noopener" }, link.name, el("small", {}, link.url)))));
  } catch (err) {
    list.replaceChildren(el("li", { class: "empty" }, `links unavailable (${err.message})`));
  }
}

loadLinks();
refresh();
refreshSnapshots();
setInterval(refresh, REFRESH_MS);
setInterval(refreshSnapshots, SNAPSHOTS_REFRESH_MS);

// hookbus web panel: polls api/status, shows the subscribers and their problems, lists the
// dead letters and retries or discards them. Plain JavaScript, no build step; every URL is
// relative to the page, so the panel works under whatever prefix the application mounts it.
"use strict";

const REFRESH_MS =
  (Number(document.querySelector('meta[name="hookbus-refresh"]')?.content) || 2) * 1000;
const ACTION_HEADERS = { "X-Hookbus-Panel": "1" };
const $ = (id) => document.getElementById(id);

class HttpError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}${detail ? `: ${detail}` : ""}`);
    this.status = status;
  }
}

async function request(path, options = {}) {
  const response = await fetch(new URL(path, document.baseURI), { cache: "no-store", ...options });
  if (!response.ok) {
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch {
      detail = response.statusText;
    }
    throw new HttpError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

const letterPath = (id) => `api/dead-letters/${encodeURIComponent(id)}`;

// -- formatting (as `hookbus status` prints) ------------------------------------------------

const count = (value) => (value === null || value === undefined ? "?" : String(value));

function age(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 120) return `${seconds.toFixed(1)}s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)}m`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)}h`;
  return `${(seconds / 86400).toFixed(1)}d`;
}

function when(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

const rowKey = (subscriber, eventType) => JSON.stringify([subscriber, eventType]);

// -- the status -----------------------------------------------------------------------------

function worstSeverities(problems) {
  const worst = new Map();
  for (const problem of problems) {
    const key = rowKey(problem.subscriber, problem.event_type);
    if (worst.get(key) !== "error") worst.set(key, problem.severity);
  }
  return worst;
}

function subscriberRow(row, severity) {
  const tr = document.createElement("tr");
  tr.dataset.subscriber = row.subscriber;
  tr.dataset.type = row.event_type;
  if (severity) tr.className = severity;
  cell(tr, row.declared ? row.subscriber : `${row.subscriber} (not declared)`, "subscriber");
  if (!row.durable) {
    tr.classList.add("ephemeral");
    cell(tr, `${row.event_type} (ephemeral)`, "type");
    for (const name of ["lag", "pending", "oldest", "consumers", "dead"]) cell(tr, "", `num ${name}`);
    return tr;
  }
  cell(tr, row.event_type, "type");
  cell(tr, count(row.lag), "num lag");
  cell(tr, count(row.pending), "num pending");
  cell(tr, age(row.oldest_pending_age), "num oldest");
  cell(tr, count(row.consumers), "num consumers");
  const dead = cell(tr, "", "num dead");
  if (row.dead_letters) {
    const show = document.createElement("button");
    show.type = "button";
    show.className = "link";
    show.textContent = String(row.dead_letters);
    show.title = "show these dead letters";
    show.addEventListener("click", () => setFilters(row.subscriber, row.event_type));
    dead.append(show);
  } else {
    dead.textContent = count(row.dead_letters);
  }
  return tr;
}

function renderProblems(problems) {
  const items = problems.map((problem) => {
    const li = document.createElement("li");
    li.className = problem.severity;
    li.dataset.kind = problem.kind;
    const severity = document.createElement("span");
    severity.className = "severity";
    severity.textContent = problem.severity;
    let where = "outbox: ";
    if (problem.subscriber !== null) where = `${problem.subscriber} / ${problem.event_type}: `;
    li.append(severity, `${where}${problem.message}`);
    return li;
  });
  $("problems").replaceChildren(...items);
  $("healthy").hidden = problems.length > 0;
  const health = $("health");
  if (!problems.length) {
    health.className = "health healthy";
    health.textContent = "healthy";
  } else {
    const worst = problems.some((p) => p.severity === "error") ? "error" : "warning";
    health.className = `health ${worst}`;
    health.textContent = `${problems.length} problem${problems.length > 1 ? "s" : ""}`;
  }
}

function renderTypes(status) {
  const rows = status.event_types.map((type) => {
    const tr = document.createElement("tr");
    tr.dataset.type = type.name;
    cell(tr, type.name);
    cell(tr, type.durable ? "yes" : "no");
    cell(tr, type.durable ? count(type.stored) : "", "num stored");
    return tr;
  });
  $("types").replaceChildren(...rows);
  const outbox = status.outbox;
  $("outbox").hidden = outbox === null;
  if (outbox !== null) {
    const oldest = outbox.oldest_age === null ? "" : `, the oldest for ${age(outbox.oldest_age)}`;
    $("outbox").textContent =
      `outbox: ${outbox.waiting} row(s) waiting${oldest}, ${outbox.poisoned} poisoned`;
  }
}

function setOptions(select, values) {
  const wanted = ["", ...values];
  const current = [...select.options].map((option) => option.value);
  if (JSON.stringify(current) === JSON.stringify(wanted)) return;
  const chosen = select.value;
  select.replaceChildren(
    ...wanted.map((value) => new Option(value || "all", value, false, value === chosen)),
  );
}

function renderStatus(status) {
  $("mode").textContent = `${status.mode} mode`;
  const worst = worstSeverities(status.problems);
  $("subscribers").replaceChildren(
    ...status.subscribers.map((row) =>
      subscriberRow(row, worst.get(rowKey(row.subscriber, row.event_type))),
    ),
  );
  renderProblems(status.problems);
  renderTypes(status);
  const durable = status.subscribers.filter((row) => row.durable);
  setOptions($("filter-subscriber"), [...new Set(durable.map((row) => row.subscriber))].sort());
  setOptions($("filter-type"), [...new Set(durable.map((row) => row.event_type))].sort());
}

// -- dead letters ---------------------------------------------------------------------------

let lettersShown = null; // what the listed dead letters reflect: filters and counts
let openLetter = null;

function filters() {
  return { subscriber: $("filter-subscriber").value, type: $("filter-type").value };
}

function setFilters(subscriber, eventType) {
  $("filter-subscriber").value = subscriber;
  $("filter-type").value = eventType;
  lettersShown = null;
  poll();
  $("letters-card").scrollIntoView({ behavior: "smooth", block: "start" });
}

function letterRow(letter) {
  const tr = document.createElement("tr");
  tr.dataset.id = letter.id;
  tr.tabIndex = 0;
  tr.title = "open";
  if (openLetter && openLetter.id === letter.id) tr.classList.add("open");
  cell(tr, when(letter.failed_at), "failed-at");
  cell(tr, letter.subscriber, "subscriber");
  cell(tr, letter.event_type, "type");
  cell(tr, String(letter.attempts), "num attempts");
  cell(tr, `${letter.error_type}: ${letter.error_message}`, "error-text");
  tr.addEventListener("click", () => showLetter(letter.id));
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter") showLetter(letter.id);
  });
  return tr;
}

async function refreshLetters(status) {
  const wanted = filters();
  const counts = status.subscribers.map((row) => [row.subscriber, row.event_type, row.dead_letters]);
  const signature = JSON.stringify([wanted, counts]);
  if (signature === lettersShown) return;
  const query = new URLSearchParams();
  if (wanted.subscriber) query.set("subscriber", wanted.subscriber);
  if (wanted.type) query.set("type", wanted.type);
  const found = await request(`api/dead-letters?${query}`);
  lettersShown = signature;
  $("letters").replaceChildren(...found.dead_letters.map(letterRow));
  $("letters-empty").hidden = found.total > 0;
  const shown = found.dead_letters.length;
  $("letters-count").textContent =
    shown < found.total ? `${shown} of ${found.total}, oldest first` : `${found.total}`;
}

function detail(list, label, value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dd.dataset.field = label;
  list.append(dt, dd);
}

function letterBody(letter) {
  if (letter.envelope) {
    return ["Event data", JSON.stringify(letter.envelope.data, null, 2)];
  }
  const limit = 4000;
  if (letter.payload !== undefined) {
    const cut = letter.payload.length > limit ? "\n…" : "";
    return ["Raw payload (not a valid envelope)", letter.payload.slice(0, limit) + cut];
  }
  if (letter.payload_base64 !== undefined) {
    return ["Raw payload, base64 (not UTF-8)", letter.payload_base64.slice(0, limit)];
  }
  return ["Event data", "-"];
}

async function showLetter(id) {
  let letter;
  try {
    letter = await request(letterPath(id));
  } catch (error) {
    say(`Could not open ${id}: ${error.message}`, true);
    return;
  }
  openLetter = letter;
  $("letter-id").textContent = letter.id;
  const list = $("letter-details");
  list.replaceChildren();
  detail(list, "subscriber", letter.subscriber);
  detail(list, "event type", letter.event_type);
  detail(list, "event id", letter.event_id || "-");
  detail(list, "attempts", String(letter.attempts));
  detail(list, "failed at", when(letter.failed_at));
  detail(list, "error", `${letter.error_type}: ${letter.error_message}`);
  if (letter.source !== null) detail(list, "from", `${letter.source} entry ${letter.position}`);
  if (letter.envelope) detail(list, "emitted at", when(letter.envelope.time));
  const [title, body] = letterBody(letter);
  $("letter-body-title").textContent = title;
  $("letter-body").textContent = body;
  for (const row of $("letters").rows) row.classList.toggle("open", row.dataset.id === letter.id);
  $("letter").hidden = false;
  $("letter").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function closeLetter() {
  openLetter = null;
  $("letter").hidden = true;
  for (const row of $("letters").rows) row.classList.remove("open");
}

function say(text, failed = false) {
  const result = $("action-result");
  result.textContent = text;
  result.classList.toggle("failed", failed);
}

async function act(kind) {
  const letter = openLetter;
  if (!letter) return;
  const question =
    kind === "retry"
      ? `Retry dead letter ${letter.id}?\n\nIts event goes back to ${letter.subscriber} only, ` +
        "with fresh attempts."
      : `Discard dead letter ${letter.id}?\n\nIt is deleted for good.`;
  if (!window.confirm(question)) return;
  const buttons = [$("retry"), $("discard")];
  for (const button of buttons) button.disabled = true;
  try {
    if (kind === "retry") {
      await request(`${letterPath(letter.id)}/retry`, { method: "POST", headers: ACTION_HEADERS });
      say(`Re-queued ${letter.id}: its event goes back to ${letter.subscriber}.`);
    } else {
      await request(letterPath(letter.id), { method: "DELETE", headers: ACTION_HEADERS });
      say(`Discarded ${letter.id}.`);
    }
    closeLetter();
    lettersShown = null;
    poll();
  } catch (error) {
    say(`Could not ${kind} ${letter.id}: ${error.message}`, true);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

// -- polling --------------------------------------------------------------------------------

let timer = null;
let polling = false;
let pollAgain = false;

function setUpdated(state, text) {
  const updated = $("updated");
  updated.className = `updated ${state}`;
  updated.textContent = text;
}

async function poll() {
  clearTimeout(timer);
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  try {
    if (!document.hidden) {
      const status = await request("api/status");
      renderStatus(status);
      await refreshLetters(status);
      setUpdated("live", `live · ${when(status.taken_at).slice(11)}`);
    }
  } catch (error) {
    const refused = error.status === 401 || error.status === 403;
    setUpdated(
      "offline",
      refused
        ? `not allowed (${error.message})`
        : `no answer (${error.message}): retrying every ${REFRESH_MS / 1000} s`,
    );
  } finally {
    polling = false;
    timer = setTimeout(poll, pollAgain ? 0 : REFRESH_MS);
    pollAgain = false;
  }
}

$("retry").addEventListener("click", () => act("retry"));
$("discard").addEventListener("click", () => act("discard"));
$("close-letter").addEventListener("click", closeLetter);
for (const id of ["filter-subscriber", "filter-type"]) {
  $(id).addEventListener("change", () => {
    lettersShown = null;
    poll();
  });
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});
poll();

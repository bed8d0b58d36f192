// The shop's dashboard: one EventSource on the hookbus feed drives every panel.
// Plain browser JavaScript, no build step. Data from the server is only ever
// written with textContent.
"use strict";

const FEED_LIMIT = 150;
const HELLO_EVERY_MS = 15000;
const FORGET_AFTER_S = 40;
const NAME_KEY = "hookbus-demo-user";
const VISITOR_KEY = "hookbus-demo-visitor";
const TECHNICAL = new Set(["progress_updated", "counters_reported"]);

const $ = (id) => document.getElementById(id);
const state = {
  durable: {},            // event type -> durable?
  countersByProcess: {},  // process -> [{subscriber, event_type, handled, ...}]
  online: {},             // visitor id -> {user, seen: Date.now() when last heard of}
  visitor: null,          // this browser's visitor id (the same in all its tabs)
  job: null,              // the import job the progress bar follows
};

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const text = await response.text();  // empty for 204 No Content
  const body = text && response.headers.get("content-type")?.includes("json")
    ? JSON.parse(text) : text;
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? body.detail : body;
    throw new Error(typeof detail === "string" ? detail : describeErrors(detail));
  }
  return body;
}

function describeErrors(detail) {
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).slice(-1)[0]}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(detail);
}

function show(element, text, ok) {
  element.textContent = text;
  element.className = `result ${ok ? "ok" : "error"}`;
}

function postJson(path, data) {
  return api(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(data),
  });
}

// ---- feed -------------------------------------------------------------------

const describe = {
  sale_closed: (d) => `Sale #${d.sale_id} closed: ${d.total} € (${d.payment_method})`,
  cash_session_opened: (d) => `Till session ${d.session_id} opened by ${d.cashier}`,
  cash_session_closed: (d) => `Till session ${d.session_id} closed: ${d.sales} sales, ${d.total} €`,
  member_created: (d) => `New member #${d.member_id}: ${d.name}`,
  article_imported: (d) => `Article #${d.article_id} imported: ${d.label} (${d.price} €)`,
  import_finished: (d) => `Import ${d.job_id} finished: ${d.articles} articles`,
  progress_updated: (d) => `${d.job_id}: ${d.done} / ${d.total} (${d.percent}%)`,
  user_connected: (d) => `${d.user} is online`,
  cache_invalidated: (d) => `Cache "${d.key}" invalidated in every process`,
  counters_reported: (d) => `Counters of ${d.process}`,
};

function addToFeed(envelope) {
  const technical = TECHNICAL.has(envelope.type);
  const item = document.createElement("li");
  item.className = "fresh";
  item.dataset.type = envelope.type;
  item.hidden = technical && !$("show-technical").checked;
  const time = document.createElement("time");
  time.dateTime = envelope.time;
  time.textContent = new Date(envelope.time).toLocaleTimeString();
  const type = document.createElement("span");
  type.className = `type ${state.durable[envelope.type] ? "durable" : "ephemeral"}`;
  type.textContent = envelope.type;
  type.title = state.durable[envelope.type] ? "durable (stored, retried)" : "ephemeral (live only)";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = (describe[envelope.type] || JSON.stringify)(envelope.data);
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = envelope.id.slice(-8);
  id.title = envelope.id;
  item.append(time, type, text, id);
  const feed = $("feed");
  feed.prepend(item);
  while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
  $("feed-empty").hidden = true;
}

function onEnvelope(envelope) {
  const react = reactions[envelope.type];
  if (react) react(envelope.data);
  addToFeed(envelope);
}

// onOpen runs at every (re)connection, once the server listens for this page.
function connectFeed(path, types, onOpen) {
  const source = new EventSource(path);  // reconnects by itself, sending Last-Event-ID
  const status = $("feed-status");
  source.onopen = () => {
    status.textContent = "live";
    status.className = "feed-status live";
    onOpen();
  };
  source.onerror = () => {
    status.textContent = "reconnecting…";
    status.className = "feed-status connecting";
  };
  for (const type of types) {
    source.addEventListener(type, (message) => onEnvelope(JSON.parse(message.data)));
  }
  window.addEventListener("pagehide", () => source.close());
  return source;
}

// ---- panels ------------------------------------------------------------------

const reactions = {
  sale_closed: refreshTill,
  cash_session_opened: refreshTill,
  cash_session_closed: refreshTill,
  progress_updated: (d) => showProgress(d.job_id, d.done, d.total),
  import_finished: (d) => showProgress(d.job_id, d.articles, d.articles),
  user_connected: (d) => { state.online[d.visitor] = { user: d.user, seen: Date.now() }; renderOnline(); },
  counters_reported: (d) => { state.countersByProcess[d.process] = d.counters; renderCounters(); },
};

function deadLettered() {
  let total = 0;
  for (const counters of Object.values(state.countersByProcess)) {
    for (const c of counters) total += c.dead_lettered;
  }
  return total;
}

async function refreshTill() {
  const till = await api("/api/till");
  $("till-state").textContent = till.session_id === null
    ? "closed"
    : `session ${till.session_id} · ${till.sales} sales · ${till.total} €`;
}

function showProgress(jobId, done, total) {
  if (state.job !== jobId) {
    if (state.job && done < total && !state.mine?.has(jobId)) return;  // keep following ours
    state.job = jobId;
  }
  const percent = total ? Math.floor((100 * done) / total) : 0;
  const bar = $("import-progress");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.classList.toggle("done", percent >= 100);
  $("import-progress-fill").style.width = `${percent}%`;
  $("import-progress-label").textContent = `${percent}%`;
  const result = $("import-result");
  result.textContent = percent >= 100
    ? `${jobId}: ${total} articles imported, barcodes on their way`
    : `${jobId}: ${done} / ${total} articles`;
  result.className = `result${percent >= 100 ? " ok" : ""}`;
}

function renderCounters() {
  const totals = new Map();
  for (const counters of Object.values(state.countersByProcess)) {
    for (const c of counters) {
      const key = `${c.subscriber}\u0000${c.event_type}`;
      const sum = totals.get(key) || { ...c, handled: 0, retried: 0, dead_lettered: 0 };
      sum.handled += c.handled;
      sum.retried += c.retried;
      sum.dead_lettered += c.dead_lettered;
      totals.set(key, sum);
    }
  }
  const rows = [...totals.values()].sort((a, b) =>
    (state.durable[b.event_type] - state.durable[a.event_type])
    || a.subscriber.localeCompare(b.subscriber));
  const body = $("counters");
  body.replaceChildren(...rows.map((c) => {
    const row = document.createElement("tr");
    row.dataset.subscriber = c.subscriber;
    row.dataset.eventType = c.event_type;
    const cells = [
      [c.subscriber, ""], [c.event_type, ""], [c.handled, "num handled"],
      [c.retried, "num retried"], [c.dead_lettered, "num dead"],
    ];
    for (const [value, cls] of cells) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      cell.className = cls + (typeof value === "number" && value > 0 ? " nonzero" : "");
      row.append(cell);
    }
    return row;
  }));
  const dead = deadLettered();
  if (dead !== state.deadLettered) {
    state.deadLettered = dead;
    refreshDeadLetters();
  }
  const processes = Object.keys(state.countersByProcess).length;
  $("processes").textContent = `· ${processes} web process${processes > 1 ? "es" : ""}`;
}

async function refreshDeadLetters() {
  const letters = await api("/api/dead-letters");
  $("letters-empty").hidden = letters.length > 0;
  $("letters").replaceChildren(...letters.reverse().map((letter) => {
    const item = document.createElement("li");
    item.dataset.id = letter.id;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = letter.subscriber;
    const what = document.createElement("small");
    what.textContent = `${letter.event_type} · ${letter.attempts} attempts`;
    who.append(what);
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = letter.error;
    const buttons = document.createElement("span");
    buttons.className = "buttons";
    const retry = document.createElement("button");
    retry.textContent = "Retry";
    retry.className = "retry";
    retry.addEventListener("click", () => settle(retry, `/api/dead-letters/${letter.id}/retry`, "POST"));
    const discard = document.createElement("button");
    discard.textContent = "Discard";
    discard.className = "ghost discard";
    discard.addEventListener("click", () => settle(discard, `/api/dead-letters/${letter.id}`, "DELETE"));
    buttons.append(retry, discard);
    item.append(who, error, buttons);
    return item;
  }));
}

async function settle(button, path, method) {
  try {
    await busy(button, api(path, { method }));
  } finally {
    refreshDeadLetters();
  }
}

function renderOnline() {
  const now = Date.now();
  const visitors = Object.entries(state.online)
    .filter(([, { seen }]) => now - seen < FORGET_AFTER_S * 1000)
    .sort(([a, x], [b, y]) => x.user.localeCompare(y.user) || a.localeCompare(b));
  const list = $("online");
  list.replaceChildren(...visitors.map(([visitor, { user }]) => {
    const item = document.createElement("li");
    item.textContent = user;
    item.dataset.user = user;
    if (visitor === state.visitor) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "(you)";
      item.append(you);
    }
    return item;
  }));
  if (!visitors.length) {
    const item = document.createElement("li");
    item.className = "empty muted";
    item.textContent = "Nobody yet.";
    list.append(item);
  }
}

// ---- actions -----------------------------------------------------------------

function busy(button, promise) {
  button.disabled = true;
  return promise.finally(() => { button.disabled = false; });
}

async function closeSale(event) {
  event.preventDefault();
  const form = event.target;
  const data = Object.fromEntries(new FormData(form));
  try {
    const sale = await busy($("close-sale"), postJson("/api/till/sales", data));
    show($("sale-result"), `Sale #${sale.sale_id} closed (${sale.total} €)`, true);
  } catch (error) {
    show($("sale-result"), error.message, false);
  }
}

async function closeTill() {
  try {
    await busy($("close-till"), api("/api/till/close", { method: "POST" }));
    show($("sale-result"), "Till closed.", true);
  } catch (error) {
    show($("sale-result"), error.message, false);
  }
}

async function startImport(button, csvText) {
  try {
    const job = await busy(button, api("/api/imports", {
      method: "POST",
      headers: { "content-type": "text/csv" },
      body: csvText,
    }));
    state.mine = state.mine || new Set();
    state.mine.add(job.job_id);
    state.job = job.job_id;
    showProgress(job.job_id, 0, job.articles);
  } catch (error) {
    show($("import-result"), error.message, false);
  }
}

async function importFile() {
  const file = $("import-file").files[0];
  if (!file) {
    show($("import-result"), "Choose a CSV file first.", false);
    return;
  }
  await startImport($("import-upload"), await file.text());
}

async function importSample() {
  await startImport($("import-sample"), await api("/api/imports/sample.csv"));
}

async function addMember(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const member = await postJson("/api/members", Object.fromEntries(new FormData(form)));
    show($("member-result"), `Welcome, ${member.name} (member #${member.member_id})`, true);
    form.reset();
  } catch (error) {
    show($("member-result"), error.message, false);
  }
}

function sayHello() {
  const user = $("me").value.trim();
  if (!user) return;
  state.online[state.visitor] = { user, seen: Date.now() };
  renderOnline();
  postJson("/api/presence", { visitor: state.visitor, user }).catch(() => {});
}

// Who the server heard from before this page's feed was listening.
async function refreshOnline() {
  const online = await api("/api/presence");
  for (const { visitor, user, ago } of online.visitors) {
    const seen = Date.now() - ago * 1000;
    if (!(state.online[visitor]?.seen > seen)) state.online[visitor] = { user, seen };
  }
  renderOnline();
}

// One id per browser, kept whatever name its visitor gives: a hello under a new
// name replaces the old name on every page.
function visitorId() {
  let id = localStorage.getItem(VISITOR_KEY);
  if (!/^[0-9a-f]{24}$/.test(id || "")) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem(VISITOR_KEY, id);
  }
  return id;
}

function rename() {
  const me = $("me");
  const user = me.value.trim();
  if (!user) {  // no name: keep the one we had
    me.value = localStorage.getItem(NAME_KEY) || "";
    return;
  }
  localStorage.setItem(NAME_KEY, user);
  sayHello();
}

// ---- start -------------------------------------------------------------------

async function start() {
  state.visitor = visitorId();
  const me = $("me");
  me.value = localStorage.getItem(NAME_KEY) || `Volunteer ${Math.floor(10 + Math.random() * 90)}`;
  localStorage.setItem(NAME_KEY, me.value);  // the browser's other tabs say the same name
  me.addEventListener("change", rename);
  window.addEventListener("storage", (event) => {  // renamed in another tab
    if (event.key === NAME_KEY && event.newValue) {
      me.value = event.newValue;  // that tab said hello under the new name
      state.online[state.visitor] = { user: event.newValue, seen: Date.now() };
      renderOnline();
    }
  });

  const meta = await api("/api/meta");
  state.durable = meta.event_types;
  $("mode").textContent = `${meta.mode} mode`;
  $("feed-link").href = meta.feed;
  connectFeed(meta.feed, Object.keys(meta.event_types), () => {
    refreshOnline().catch(() => {});
    sayHello();
  });

  $("sale-form").addEventListener("submit", closeSale);
  $("close-till").addEventListener("click", closeTill);
  $("import-upload").addEventListener("click", importFile);
  $("import-sample").addEventListener("click", importSample);
  $("member-form").addEventListener("submit", addMember);
  $("show-technical").addEventListener("change", (event) => {
    for (const item of $("feed").children) {
      if (TECHNICAL.has(item.dataset.type)) item.hidden = !event.target.checked;
    }
  });

  const counters = await api("/api/counters");
  state.countersByProcess[counters.process] ??= counters.counters;
  renderCounters();
  refreshDeadLetters();
  renderOnline();
  refreshTill();
  setInterval(sayHello, HELLO_EVERY_MS);
  setInterval(renderOnline, 5000);
}

start().catch((error) => {
  const status = $("feed-status");
  status.textContent = `error: ${error.message}`;
  status.className = "feed-status";
});

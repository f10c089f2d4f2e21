// The cry monitor's page: live state by Server-Sent Events, a 10-minute chart, the night's
// episodes, alerts (notification + a sound made with WebAudio), a recording upload, and a
// parent's marks ("Not a cry" on an episode, "That was a cry"), which the monitor learns at once.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
// This page's own token, sent with an upload: the server takes uploads only from its page.
const PAGE_TOKEN = document.querySelector('meta[name="page-token"]').content;
const STATE = JSON.parse(document.getElementById("states").textContent);  // cry.decision.State, from the server
const CHART_SECONDS = 600;
const TOTAL_HOURS = 12;
const $ = (id) => document.getElementById(id);

let threshold = null;        // crying above this probability (the server's)
let recent = [];             // [time, cry probability or null, level dBFS], oldest first
let now = Date.now() / 1000; // the stream's clock: the latest answer's time
const episodes = new Map();  // start time -> episode {start, end, duration_seconds, reason, guesses, open}
let audio = null;            // AudioContext, made on a click (browsers allow sound only after one)
let stopped = null;          // when the monitor said it stopped; null while it runs
let listening = true;        // false while the monitor says it is not listening (input lost or digital zeros)

function url(path, params = {}) {
  const query = new URLSearchParams(params);
  if (TOKEN) query.set("token", TOKEN);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function getJSON(path, params) {
  const response = await fetch(url(path, params), {cache: "no-store"});
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// ---- formatting ----------------------------------------------------------------------------

function clock(seconds) {
  const d = new Date(seconds * 1000);
  const time = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
  const today = new Date().toDateString() === d.toDateString();
  return today ? time : `${d.toLocaleDateString([], {month: "short", day: "numeric"})} ${time}`;
}

function duration(seconds) {
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${seconds % 60} s`;
}

function reasonText(e) {  // the server says the reason in words; an old history row may lack them
  return e.reason_text || (e.reason ? e.reason : "reason not known");
}

// ---- now -----------------------------------------------------------------------------------

function showState(s) {
  if (s && s.stopped) { showStopped(s.stopped); return; }
  if (!s || !s.state) return;
  now = s.time;
  const words = {[STATE.QUIET]: "Quiet", [STATE.NOT_CRYING]: "Not crying", [STATE.CRYING]: "Crying",
    [STATE.NOT_LISTENING]: "Not listening"};
  $("now").dataset.state = s.state;
  $("state").textContent = words[s.state] || s.state;
  $("detail").textContent = s.state === STATE.CRYING ? s.reason_text
    : s.state === STATE.NOT_CRYING ? `heard: ${s.heard}`
    : s.state === STATE.NOT_LISTENING ? `${s.heard}; retrying` : "nothing loud enough to listen to";
  const deaf = s.state === STATE.NOT_LISTENING;
  if (deaf && listening) warnUser(`The monitor is not listening: ${s.heard}`);
  listening = !deaf;
  $("level").textContent = s.level_dbfs <= -120 ? "−∞" : s.level_dbfs.toFixed(0);  // digital silence
  $("probability").textContent = s.cry_probability === null ? "–" : s.cry_probability.toFixed(2);
}

function addPoint(s) {
  recent.push([s.time, s.cry_probability, s.level_dbfs]);
  while (recent.length && recent[0][0] < s.time - CHART_SECONDS) recent.shift();
}

let chartPending = false;
function drawChartSoon() {  // at most once a frame, however fast the answers come (--fast)
  if (chartPending) return;
  chartPending = true;
  requestAnimationFrame(() => { chartPending = false; drawChart(); });
}

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  // the last 10 minutes; less while there is less to show (at least one minute)
  const span = Math.min(CHART_SECONDS, Math.max(60, recent.length ? now - recent[0][0] : 0));
  const x = (t) => width - (now - t) / span * width;
  const y = (p) => height - 4 - p * (height - 8);
  const levelY = (db) => y(Math.min(1, Math.max(0, (db + 90) / 90)));  // -90..0 dBFS
  g.strokeStyle = "#2c3442";
  const step = span > 120 ? 60 : 10;  // grid: every minute, or every 10 s
  for (let t = step; t < span; t += step) {
    g.beginPath(); g.moveTo(x(now - t), 0); g.lineTo(x(now - t), height); g.stroke();
  }
  $("span").textContent = span >= 120 ? `last ${Math.round(span / 60)} minutes` : `last ${Math.round(span)} s`;
  if (threshold !== null) {
    g.strokeStyle = "#7d8796"; g.setLineDash([4, 4]);
    g.beginPath(); g.moveTo(0, y(threshold)); g.lineTo(width, y(threshold)); g.stroke();
    g.setLineDash([]);
  }
  line(g, recent.map(([t, , db]) => [x(t), levelY(db)]), "#5b7fa8", 1);
  const points = recent.map(([t, p]) => (p === null ? null : [x(t), y(p)]));
  line(g, points, "#ff8a5c", 2);
}

function line(g, points, colour, width) {  // null points break the line (quiet: no model call)
  g.strokeStyle = colour; g.lineWidth = width; g.beginPath();
  let drawing = false;
  for (const point of points) {
    if (point === null) { drawing = false; continue; }
    if (drawing) g.lineTo(...point); else g.moveTo(...point);
    drawing = true;
  }
  g.stroke(); g.lineWidth = 1;
}

function showStopped(when) {  // the monitor said it stopped: nothing is listened to until it starts again
  stopped = when;
  $("now").dataset.state = "stopped";
  $("state").textContent = "Monitor stopped";
  $("detail").textContent = `at ${clock(when)}: nothing is being listened to`;
  $("link").textContent = "monitor stopped"; $("link").className = "link down";
}

// ---- the night -----------------------------------------------------------------------------

function addEpisode(e, open = false) {
  const known = episodes.get(e.start);
  episodes.set(e.start, {...known, ...e, open});
}

function renderTimeline() {
  const since = Date.now() / 1000 - TOTAL_HOURS * 3600;
  const list = [...episodes.values()].filter((e) => e.start >= Math.min(since, now - TOTAL_HOURS * 3600))
    .sort((a, b) => b.start - a.start);
  const rows = list.map((e) => {
    const li = document.createElement("li");
    li.className = e.open ? "open" : e.end === null ? "unfinished" : "";
    const lasted = e.open ? `${duration(now - e.start)} so far` : e.end === null ? "no end recorded" : duration(e.duration_seconds);
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = `${clock(e.start)} – ${e.open ? "now" : e.end === null ? "?" : clock(e.end)}`;
    const how = document.createElement("span");
    how.className = "how";
    how.textContent = `${lasted} · ${reasonText(e)}`;
    li.append(when, how);
    if (!e.open && e.end !== null) li.append(markButton(e));
    return li;
  });
  $("timeline").replaceChildren(...rows);
  $("no-episodes").hidden = rows.length > 0;
  const seconds = list.reduce((sum, e) => sum + (e.open ? now - e.start : e.duration_seconds || 0), 0);
  $("totals").textContent = `${list.length} episode${list.length === 1 ? "" : "s"}, ` +
    `${(seconds / 60).toFixed(1)} minutes crying`;
}

// ---- a parent's marks ------------------------------------------------------------------------

const marked = new Map();  // episode start -> what the monitor said when it was marked

function markButton(e) {
  if (marked.has(e.start)) {
    const done = document.createElement("span");
    done.className = "marked";
    done.textContent = "marked: not a cry";
    return done;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "not-cry";
  button.textContent = "Not a cry";
  button.title = "a false alarm: the monitor learns this sound and keeps the clip on its machine";
  button.addEventListener("click", () => mark({label: "not_cry", episode_start: e.start}, e.start));
  return button;
}

async function mark(body, episodeStart = null) {
  $("mark-status").textContent = "Learning…";
  try {
    const response = await fetch(url("/api/feedback"), {method: "POST", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-Page-Token": PAGE_TOKEN}});
    const answer = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
    if (!response.ok) { $("mark-status").textContent = `Not learnt: ${answer.error}`; return; }
    if (episodeStart !== null) marked.set(episodeStart, answer);
    $("mark-status").textContent = `Learnt: ${answer.text}.`;
    renderTimeline();
  } catch (error) {
    $("mark-status").textContent = `Not learnt: ${error.message}`;
  }
}

// ---- alerts --------------------------------------------------------------------------------

function beep() {
  if (!audio) return false;
  const start = audio.currentTime + 0.05;
  for (let i = 0; i < 3; i++) {  // three rising pips
    const tone = audio.createOscillator(), gain = audio.createGain();
    tone.frequency.value = 660 + 220 * i;
    gain.gain.setValueAtTime(0.0001, start + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.4, start + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.3 + 0.25);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + i * 0.3); tone.stop(start + i * 0.3 + 0.26);
  }
  return true;
}

function warnUser(text) {  // the monitor cannot hear: the same ways as an alert
  $("alert").hidden = false;
  $("alert").textContent = text;
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification("Cry monitor", {body: text, tag: "cry-monitor-deaf"});
  }
  beep();
}

function alertUser(a, test = false) {
  const text = test ? "Test alert: this is how an alert looks and sounds."
    : `Crying for ${duration(a.lasted_seconds)} (since ${clock(a.episode_start)}): ${a.reason_text}`;
  $("alert").hidden = false;
  $("alert").textContent = text;
  const ways = ["on this page"];
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification("Baby crying", {body: text, tag: "cry-alert", renotify: true});
    ways.push("notification");
  }
  if (beep()) ways.push("sound");
  if (navigator.vibrate && navigator.vibrate([300, 150, 300])) ways.push("vibration");
  $("alert-status").textContent = `${test ? "test alert" : "alert"} at ${clock(Date.now() / 1000)}: ${ways.join(", ")}`;
}

async function allowAlerts() {
  audio = audio || new (window.AudioContext || window.webkitAudioContext)();
  await audio.resume();
  let notes = "sound on";
  if (!("Notification" in window)) {
    notes += "; this browser has no notifications here (phones allow them only over https or on this machine)";
  } else {
    const answer = await Notification.requestPermission();
    notes += `; notifications ${answer === "granted" ? "on" : answer}`;
  }
  $("alert-status").textContent = notes;
}

// ---- upload --------------------------------------------------------------------------------

async function analyse(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { $("upload-status").textContent = "Choose a recording first."; return; }
  $("upload-status").textContent = `Analysing ${file.name}…`;
  $("upload-result").hidden = true;
  try {
    const response = await fetch(url("/api/upload"), {method: "POST", body: file,
      headers: {"Content-Type": "application/octet-stream", "X-Page-Token": PAGE_TOKEN}});
    const answer = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
    if (!response.ok) { $("upload-status").textContent = `Cannot analyse ${file.name}: ${answer.error}`; return; }
    showUpload(file.name, answer);
  } catch (error) {
    $("upload-status").textContent = `Upload failed: ${error.message}`;
  }
}

function showUpload(name, answer) {
  const n = answer.windows.length;
  const heard = answer.episodes.map((e) => `${e.stream_start_seconds.toFixed(1)}–` +
    `${(e.stream_start_seconds + e.duration_seconds).toFixed(1)} s, ${reasonText(e)}`);
  $("upload-status").textContent = `${name}: ${answer.seconds.toFixed(1)} s at ${answer.sample_rate_hz} Hz.`;
  $("upload-summary").textContent = `Crying in ${answer.crying_windows} of ${n} windows. ` +
    (heard.length ? `Crying episodes: ${heard.join("; ")}.` : "No crying episode.");
  $("spectrogram").src = `data:image/png;base64,${answer.image.png_base64}`;
  const end = answer.image.end_seconds;
  $("spectrogram-caption").textContent = `The loudest window (${(end - answer.image.seconds).toFixed(1)}–${end.toFixed(1)} s) ` +
    "as the model sees it: time left to right, low pitch at the bottom.";
  const rows = answer.windows.map((w) => {
    const tr = document.createElement("tr");
    tr.className = w.state;
    const text = w.state === STATE.CRYING ? `crying: ${w.reason_text}`
      : w.state === STATE.NOT_CRYING ? `not crying: ${w.heard}` : "quiet";
    for (const cell of [w.stream_seconds.toFixed(1), text, w.level_dbfs.toFixed(0),
      w.cry_probability === null ? "–" : w.cry_probability.toFixed(2)]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    return tr;
  });
  $("windows").tBodies[0].replaceChildren(...rows);
  $("windows-count").textContent = n;
  $("upload-result").hidden = false;
}

// ---- start ---------------------------------------------------------------------------------

async function refresh() {  // at the start, and after a reconnection (events may have been missed)
  try {
    const [state, points, earlier] = await Promise.all([getJSON("/api/state"), getJSON("/api/recent"),
      getJSON("/api/episodes", {since: new Date(Date.now() - TOTAL_HOURS * 3600e3).toISOString()})]);
    threshold = state.cry_threshold;
    recent = points;
    for (const e of earlier) addEpisode(e);
    if (state.episode) addEpisode(state.episode, true);
    showState(state);
  } catch (error) {
    $("link").textContent = `cannot reach the monitor (${error.message})`;
  }
  renderTimeline(); drawChart();
}

function connect() {
  const events = new EventSource(url("/api/events"));
  let opened = false;
  events.onopen = () => {
    $("link").textContent = "live"; $("link").className = "link live";
    if (opened || stopped) { stopped = null; refresh(); }  // (again, or after a stop): the monitor is back
    opened = true;
  };
  events.onerror = () => {
    if (stopped) return;  // keeps saying "monitor stopped" while it retries
    $("link").textContent = "reconnecting…"; $("link").className = "link down";
  };
  events.addEventListener("stopped", (m) => showStopped(JSON.parse(m.data).time));
  events.addEventListener("state", (m) => {
    const s = JSON.parse(m.data);
    if (!s.state) return;
    showState(s); addPoint(s); drawChartSoon();
    if (s.state === STATE.CRYING || [...episodes.values()].some((e) => e.open)) renderTimeline();
  });
  events.addEventListener("episode", (m) => {
    const e = JSON.parse(m.data);
    addEpisode(e, e.kind === "start");
    renderTimeline();
  });
  events.addEventListener("alert", (m) => alertUser(JSON.parse(m.data)));
}

async function start() {
  $("allow").addEventListener("click", allowAlerts);
  $("test").addEventListener("click", () => alertUser(null, true));
  $("upload-form").addEventListener("submit", analyse);
  $("was-cry").addEventListener("click", () => mark({label: "cry", seconds: 60}));
  window.addEventListener("resize", drawChartSoon);
  await refresh();
  connect();
}

start();

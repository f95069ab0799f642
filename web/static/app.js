// xhrsse browser client: one EventSource per session carries everything the
// server pushes; fetch POSTs steer it (docs/PROTOCOL.md). Plain ES module, no
// build step. URLs are relative to the page, so it also works behind a proxy
// that serves it under a path prefix. Untrusted text (chat, channel characters, file names, server
// error messages) only ever reaches the page through textContent or text
// nodes, never as markup.

import { sha256Hex } from './sha256.js';

// MAX_CHARS bounds each channel box, in UTF-16 code units (a pair is never
// split), so a fast channel cannot grow the page without limit.
const MAX_CHARS = 2000;
// MAX_CHAT bounds the chat log, in messages.
const MAX_CHAT = 200;
// MAX_HISTORY bounds the connection log, in lines.
const MAX_HISTORY = 30;
// RETRY_MS is the protocol's announced "retry:" (PROTOCOL.md, 2000 ms).
// EventSource applies the server's value itself when it reconnects; it does
// not expose it to scripts, so the page's own retries (a new session after a
// refused stream, a failed POST /sessions) start from this value and back off.
const RETRY_MS = 2000;
const RETRY_MAX_MS = 30000;

const $ = (id) => document.getElementById(id);

const els = {
  connState: $('conn-state'),
  connSession: $('conn-session'),
  connReconnect: $('conn-reconnect'),
  connHistory: $('conn-history'),
  appError: $('app-error'),
  channels: $('channels'),
  channelsError: $('channels-error'),
  chatLog: $('chat-log'),
  chatForm: $('chat-form'),
  chatName: $('chat-name'),
  chatText: $('chat-text'),
  chatSend: $('chat-send'),
  chatError: $('chat-error'),
  bulkForm: $('bulk-form'),
  bulkSource: $('bulk-source'),
  bulkStart: $('bulk-start'),
  bulkProgress: $('bulk-progress'),
  bulkBytes: $('bulk-bytes'),
  bulkRate: $('bulk-rate'),
  bulkStatus: $('bulk-status'),
  bulkDownload: $('bulk-download'),
  bulkError: $('bulk-error'),
};

// ---- HTTP ----------------------------------------------------------------

/** APIError is a failed request: status 0 for a network failure. */
class APIError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.name = 'APIError';
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * api sends one request and resolves to the decoded JSON answer. Bodies go as
 * application/json; a non-2xx answer rejects with the server's own
 * {"error": ...} text.
 */
async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new APIError(0, `network error (${err.message})`);
  }
  const text = await res.text().catch(() => '');
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' ? data.error : `${res.status} ${res.statusText}`;
    throw new APIError(res.status, msg, res.headers.get('Retry-After'));
  }
  return data;
}

/** errorText turns an APIError into one line for the page. */
function errorText(err) {
  if (!(err instanceof APIError)) return String(err && err.message ? err.message : err);
  let s = err.status ? `${err.status}: ${err.message}` : err.message;
  if (err.retryAfter) s += ` (try again in ${err.retryAfter} s)`;
  return s;
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = false;
}

function clearError(el) {
  el.textContent = '';
  el.hidden = true;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- frame batching ------------------------------------------------------

// Everything the streams change on screen is noted here and drawn at most once
// per animation frame, so hundreds of events a second cost one layout a frame.
const dirty = new Set();
let frameAsked = false;

function redraw(fn) {
  dirty.add(fn);
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(drawFrame);
  }
}

function drawFrame() {
  frameAsked = false;
  const fns = [...dirty];
  dirty.clear();
  for (const fn of fns) fn();
}

// ---- connection ----------------------------------------------------------

const STATES = {
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  resumed: 'resumed',
  gap: 'gap',
  'new-session': 'new session',
  replaced: 'replaced by another tab',
};

const conn = {
  session: '', // the session id; the capability for the stream, shown short
  es: null, // the EventSource of the session
  generation: 0, // bumped on every new session, so stale answers are ignored
  fresh: false, // the session replaces one the server forgot
  lastId: '', // the last event id seen on the session, for resuming
};

function setConn(state, detail) {
  const label = STATES[state] + (detail ? ` (${detail})` : '');
  // A server that stays down fails every retry: one line says it.
  if (els.connState.dataset.state === state && els.connState.textContent === label) return;
  els.connState.dataset.state = state;
  els.connState.textContent = label;
  els.connReconnect.hidden = state !== 'replaced';
  const li = document.createElement('li');
  li.dataset.state = state;
  const at = document.createElement('time');
  const now = new Date();
  at.dateTime = now.toISOString();
  at.textContent = clock(now);
  li.append(at, ' ', label);
  els.connHistory.append(li);
  while (els.connHistory.childElementCount > MAX_HISTORY) els.connHistory.firstElementChild.remove();
}

function shortID(id) {
  return id.length > 8 ? id.slice(0, 8) + '…' : id;
}

/**
 * openSession asks for a session tuned to what the user has on and attaches
 * its stream. It keeps trying, backing off, until it gets one or a newer call
 * supersedes it.
 */
async function openSession(fresh) {
  const gen = ++conn.generation;
  closeStream();
  conn.session = '';
  conn.lastId = '';
  conn.fresh = fresh;
  els.connSession.textContent = '–';
  delete els.connSession.dataset.session;
  let delay = RETRY_MS;
  for (;;) {
    try {
      const created = await api('POST', 'sessions', { channels: wantedChannels() });
      if (gen !== conn.generation) return;
      clearError(els.appError);
      conn.session = created.session;
      els.connSession.textContent = shortID(created.session);
      els.connSession.dataset.session = created.session; // the page's own; tests steer it from outside
      applyTuned(created.channels);
      openStream(gen);
      return;
    } catch (err) {
      if (gen !== conn.generation) return;
      showError(els.appError, `cannot open a session: ${errorText(err)}`);
      setConn(fresh ? 'reconnecting' : 'connecting', `no session yet, retry in ${delay / 1000} s`);
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
      if (gen !== conn.generation) return;
    }
  }
}

function closeStream() {
  if (conn.es) conn.es.close();
  conn.es = null;
}

/** openStream attaches an EventSource to the current session. */
function openStream(gen, delay = RETRY_MS) {
  closeStream();
  // A new EventSource sends no Last-Event-ID of its own: the page carries
  // the last id it saw in the URL, so the server resumes the session.
  let url = 'events?session=' + encodeURIComponent(conn.session);
  if (conn.lastId !== '') url += '&lastEventId=' + encodeURIComponent(conn.lastId);
  const es = new EventSource(url);
  conn.es = es;
  const mine = (fn) => (e) => {
    if (conn.es !== es || gen !== conn.generation) return;
    if (e.lastEventId) conn.lastId = e.lastEventId;
    fn(e);
  };
  es.addEventListener('open', mine(() => {
    delay = RETRY_MS;
  }));
  es.addEventListener('error', mine(() => {
    if (es.readyState === EventSource.CLOSED) {
      // The server answered with an error status instead of a stream, and
      // EventSource gives up on those. 404 means it forgot the session; 503
      // (too many streams, shutting down) does not: GET sessions/ID tells
      // which, after the retry delay so a server in trouble is not hammered.
      closeStream();
      setConn('reconnecting', `stream refused, retry in ${delay / 1000} s`);
      sleep(delay).then(async () => {
        if (gen !== conn.generation) return;
        let alive = false;
        try {
          await api('GET', 'sessions/' + encodeURIComponent(conn.session));
          alive = true;
        } catch (err) {
          alive = !(err instanceof APIError && err.status === 404);
        }
        if (gen !== conn.generation) return;
        if (alive) {
          openStream(gen, Math.min(delay * 2, RETRY_MAX_MS));
          return;
        }
        conn.session = ''; // toggles now change what the next session asks for
        setConn('reconnecting', 'session lost');
        bulkLost('the session was lost');
        openSession(true);
      });
    } else {
      // A network error: EventSource reconnects by itself after the server's
      // retry, sending Last-Event-ID, and the server resumes the session.
      setConn('reconnecting');
    }
  }));
  es.addEventListener('session', mine((e) => {
    const d = JSON.parse(e.data);
    applyTuned(d.channels);
    if (d.resumed) setConn('resumed');
    else if (conn.fresh) setConn('new-session');
    else setConn('connected');
    conn.fresh = false;
  }));
  es.addEventListener('tuned', mine((e) => applyTuned(JSON.parse(e.data).channels)));
  es.addEventListener('chat', mine((e) => addChat(JSON.parse(e.data))));
  es.addEventListener('bulk', mine((e) => bulkChunk(JSON.parse(e.data))));
  es.addEventListener('bulk-end', mine((e) => bulkEnd(JSON.parse(e.data))));
  es.addEventListener('gap', mine((e) => {
    const d = JSON.parse(e.data);
    setConn('gap', `${d.missed} events missed`);
  }));
  es.addEventListener('bye', mine((e) => {
    const d = JSON.parse(e.data);
    if (d.reason === 'replaced') {
      // Another stream took this session over; reconnecting now would only
      // take it back and start a tug of war.
      closeStream();
      setConn('replaced');
    } else if (d.reason === 'expired') {
      closeStream();
      setConn('reconnecting', 'session expired');
      bulkLost('the session expired');
      openSession(true);
    } else {
      setConn('reconnecting', `server: ${d.reason}`);
    }
  }));
  for (const box of boxes.values()) {
    es.addEventListener(box.name, mine((e) => tick(box, e.data)));
  }
}

// ---- channels ------------------------------------------------------------

/** boxes maps a channel name to its box on the page. */
const boxes = new Map();
// tuned is the server's last word on the session's channels; pending holds the
// user's wish for a channel while its POST is on the way.
let tuned = new Set();
const pending = new Map();

function wantedChannels() {
  const want = new Set(tuned);
  for (const [name, on] of pending) {
    if (on) want.add(name);
    else want.delete(name);
  }
  return [...want].filter((name) => boxes.has(name));
}

function buildChannels(list) {
  els.channels.replaceChildren();
  boxes.clear();
  for (const ch of list) {
    const box = {
      name: ch.name,
      text: '',
      pendingText: '',
      count: 0,
    };
    const idp = 'ch-' + ch.name;
    box.el = document.createElement('article');
    box.el.className = 'channel';
    box.el.id = idp;
    box.el.dataset.testid = 'channel';
    box.el.dataset.channel = ch.name;
    box.el.dataset.on = 'false';
    box.el.dataset.width = String(ch.width);

    const head = document.createElement('div');
    head.className = 'channel-head';
    const h = document.createElement('h3');
    h.id = idp + '-title';
    h.textContent = ch.title || ch.name;
    const meta = document.createElement('span');
    meta.className = 'channel-meta';
    meta.textContent = `${ch.name} · ${ch.rate}/s · ${ch.width} cell${ch.width === 1 ? '' : 's'}`;
    box.toggle = document.createElement('button');
    box.toggle.type = 'button';
    box.toggle.id = idp + '-toggle';
    box.toggle.className = 'toggle';
    box.toggle.setAttribute('aria-pressed', 'false');
    box.toggle.setAttribute('aria-label', `${ch.title || ch.name} on`);
    box.toggle.textContent = 'off';
    box.toggle.addEventListener('click', () => toggleChannel(box));
    head.append(h, meta, box.toggle);

    const screen = document.createElement('div');
    screen.className = 'channel-screen';
    screen.setAttribute('aria-hidden', 'true'); // a stream of characters is noise to a screen reader
    box.screen = document.createElement('div');
    box.screen.className = 'channel-text';
    box.screen.id = idp + '-text';
    box.screen.lang = 'und';
    screen.append(box.screen);

    box.counter = document.createElement('span');
    box.counter.className = 'channel-count';
    box.counter.id = idp + '-count';
    box.counter.dataset.count = '0';
    box.counter.textContent = '0 characters';

    box.el.append(head, screen, box.counter);
    box.el.setAttribute('aria-labelledby', h.id);
    els.channels.append(box.el);
    box.draw = () => drawBox(box);
    boxes.set(ch.name, box);
  }
}

/** keepTail returns the last max code units of s without splitting a pair. */
function keepTail(s, max) {
  if (s.length <= max) return s;
  let i = s.length - max;
  const c = s.charCodeAt(i);
  if (c >= 0xdc00 && c <= 0xdfff) i++;
  return s.slice(i);
}

function tick(box, data) {
  // Count characters, not code units: channel two's ideographs may be pairs.
  let n = 0;
  for (const _ of data) n++;
  box.count += n;
  box.pendingText = keepTail(box.pendingText + data, MAX_CHARS);
  redraw(box.draw);
}

function drawBox(box) {
  if (box.pendingText) {
    box.text = keepTail(box.text + box.pendingText, MAX_CHARS);
    box.pendingText = '';
    box.screen.textContent = box.text;
  }
  box.counter.dataset.count = String(box.count);
  box.counter.textContent = `${box.count} characters`;
}

function applyTuned(list) {
  tuned = new Set(list || []);
  for (const box of boxes.values()) drawToggle(box);
}

function drawToggle(box) {
  const on = tuned.has(box.name);
  const want = pending.has(box.name) ? pending.get(box.name) : on;
  box.el.dataset.on = String(on);
  box.toggle.setAttribute('aria-pressed', String(want));
  box.toggle.setAttribute('aria-busy', String(pending.has(box.name)));
  box.toggle.textContent = want ? 'on' : 'off';
}

async function toggleChannel(box) {
  const want = !(pending.has(box.name) ? pending.get(box.name) : tuned.has(box.name));
  if (!conn.session) {
    // No session right now: the wish is what the next session will ask for.
    if (want) tuned.add(box.name);
    else tuned.delete(box.name);
    drawToggle(box);
    return;
  }
  pending.set(box.name, want);
  drawToggle(box);
  const gen = conn.generation;
  try {
    const res = await api('POST', `sessions/${encodeURIComponent(conn.session)}/channels`, {
      channel: box.name,
      on: want,
    });
    if (gen === conn.generation) applyTuned(res.channels);
    clearError(els.channelsError);
  } catch (err) {
    showError(els.channelsError, `${box.name}: ${errorText(err)}`);
  } finally {
    if (pending.get(box.name) === want) pending.delete(box.name);
    drawToggle(box);
  }
}

// ---- chat ----------------------------------------------------------------

// seen holds "id|at" of the messages shown, so the history replayed to a new
// session does not show twice; a restarted server numbers from 1 again, and
// its messages differ in time.
const seen = new Set();
const chatQueue = [];

function addChat(m) {
  chatQueue.push(m);
  if (chatQueue.length > MAX_CHAT) chatQueue.splice(0, chatQueue.length - MAX_CHAT);
  redraw(drawChat);
}

function drawChat() {
  const log = els.chatLog;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  const frag = document.createDocumentFragment();
  for (const m of chatQueue.splice(0)) {
    const key = `${m.id}|${m.at}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const li = document.createElement('li');
    li.className = m.history ? 'chat-msg history' : 'chat-msg';
    li.dataset.key = key;
    li.dataset.id = String(m.id);
    const at = document.createElement('time');
    at.className = 'chat-at';
    at.dateTime = String(m.at);
    const d = new Date(m.at);
    at.textContent = Number.isNaN(d.getTime()) ? String(m.at) : clock(d);
    const name = document.createElement('span');
    name.className = 'chat-name';
    name.textContent = String(m.name);
    const text = document.createElement('span');
    text.className = 'chat-text';
    text.textContent = String(m.text);
    li.append(at, ' ', name, ': ', text);
    frag.append(li);
  }
  log.append(frag);
  while (log.childElementCount > MAX_CHAT) {
    seen.delete(log.firstElementChild.dataset.key);
    log.firstElementChild.remove();
  }
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function clock(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

async function sendChat(e) {
  e.preventDefault();
  const text = els.chatText.value;
  const name = els.chatName.value.trim();
  if (!text.trim() || !name) return;
  if (!conn.session) {
    showError(els.chatError, 'not connected yet');
    return;
  }
  remember('xhrsse.name', name);
  els.chatSend.disabled = true;
  try {
    await api('POST', `sessions/${encodeURIComponent(conn.session)}/chat`, { name, text });
    if (els.chatText.value === text) els.chatText.value = '';
    clearError(els.chatError);
  } catch (err) {
    showError(els.chatError, errorText(err));
  } finally {
    els.chatSend.disabled = false;
  }
}

function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage may be off (private mode, sandbox); the name is then per visit.
  }
}

function recall(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

// ---- bulk ----------------------------------------------------------------

const decodeBase64 = typeof Uint8Array.fromBase64 === 'function'
  ? (s) => Uint8Array.fromBase64(s)
  : (s) => {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  };

// bulk is the transfer the panel shows; one at a time. Its chunks may arrive
// before the POST that asked for them has its answer, so a transfer without an
// id yet adopts the first id its stream brings.
let bulk = null;
let downloadURL = '';

function newTransfer(label, fileName) {
  return {
    id: null,
    label,
    fileName,
    parts: [],
    have: 0, // chunks received
    received: 0, // bytes received
    chunks: null,
    bytes: null,
    sha256: null, // announced by the POST answer
    end: null, // the bulk-end event
    startedAt: performance.now(),
    done: false,
  };
}

async function startBulk(e) {
  e.preventDefault();
  if (bulk && !bulk.done) return;
  if (!conn.session) {
    showError(els.bulkError, 'not connected yet');
    return;
  }
  const opt = els.bulkSource.selectedOptions[0];
  const value = els.bulkSource.value;
  const isFile = value.startsWith('file:');
  const body = isFile ? { file: value.slice(5) } : { bytes: Number(value) };
  const fileName = isFile ? value.slice(5) : `xhrsse-${value}.bin`;
  clearError(els.bulkError);
  if (downloadURL) URL.revokeObjectURL(downloadURL);
  downloadURL = '';
  els.bulkDownload.hidden = true;
  els.bulkDownload.removeAttribute('href');
  const t = newTransfer(opt ? opt.textContent : value, fileName);
  bulk = t;
  els.bulkStart.disabled = true;
  setBulkStatus('requesting', `requesting ${t.label}…`);
  redraw(drawBulk);
  try {
    const acc = await api('POST', `sessions/${encodeURIComponent(conn.session)}/bulk`, body);
    if (bulk !== t || t.done) return;
    t.id = t.id || acc.transfer;
    t.bytes = acc.bytes;
    t.chunks = acc.chunks;
    t.sha256 = acc.sha256;
    if (t.status === 'requesting') setBulkStatus('receiving', 'receiving…');
    if (t.end) await finishBulk(t);
  } catch (err) {
    if (bulk !== t) return;
    t.done = true;
    els.bulkStart.disabled = false;
    setBulkStatus('failed', 'failed');
    showError(els.bulkError, errorText(err));
  }
}

function ours(id) {
  const t = bulk;
  if (!t || t.done) return null;
  if (t.id === null) t.id = id;
  return t.id === id ? t : null;
}

function bulkChunk(d) {
  const t = ours(d.transfer);
  if (!t) return;
  if (t.parts[d.seq] === undefined) {
    const bytes = decodeBase64(d.data);
    t.parts[d.seq] = bytes;
    t.have++;
    t.received += bytes.length;
  }
  t.chunks = d.chunks;
  if (t.have === 1) setBulkStatus('receiving', 'receiving…');
  redraw(drawBulk);
}

function bulkEnd(d) {
  const t = ours(d.transfer);
  if (!t) return;
  t.end = d;
  if (t.bytes === null) t.bytes = d.bytes;
  if (t.chunks === null && d.bytes === 0) t.chunks = 0;
  // Without the POST answer the chunk count may be unknown (no chunk came);
  // finishing then waits for the answer.
  if (t.chunks !== null) finishBulk(t);
}

/** bulkLost ends a transfer whose session is gone. */
function bulkLost(why) {
  if (!bulk || bulk.done) return;
  bulk.done = true;
  bulk.parts = [];
  els.bulkStart.disabled = false;
  setBulkStatus('failed', `interrupted: ${why}`);
}

async function finishBulk(t) {
  if (t.done || t.finishing) return;
  t.finishing = true;
  drawBulk();
  let missing = 0;
  for (let i = 0; i < t.chunks; i++) if (t.parts[i] === undefined) missing++;
  if (missing > 0) {
    t.done = true;
    t.parts = [];
    els.bulkStart.disabled = false;
    setBulkStatus('failed', `incomplete: ${missing} of ${t.chunks} chunks missing`);
    return;
  }
  const blob = new Blob(t.parts, { type: 'application/octet-stream' });
  t.parts = [];
  setBulkStatus('verifying', 'verifying sha256…');
  let hex = '';
  try {
    hex = await sha256Hex(blob);
  } catch (err) {
    hex = '';
    showError(els.bulkError, `sha256: ${err.message}`);
  }
  t.done = true;
  els.bulkStart.disabled = false;
  const want = t.end.sha256;
  if (blob.size !== t.end.bytes) {
    setBulkStatus('mismatch', `size mismatch: got ${blob.size} bytes, want ${t.end.bytes}`);
  } else if (hex !== want || (t.sha256 && t.sha256 !== want)) {
    setBulkStatus('mismatch', 'sha256 MISMATCH');
  } else {
    const secs = (performance.now() - t.startedAt) / 1000;
    setBulkStatus('verified', `sha256 verified · ${fmtBytes(blob.size)} in ${secs.toFixed(2)} s`);
  }
  els.bulkStatus.title = hex;
  els.bulkStatus.dataset.sha256 = hex;
  if (bulk === t) {
    downloadURL = URL.createObjectURL(blob);
    els.bulkDownload.href = downloadURL;
    els.bulkDownload.download = t.fileName;
    els.bulkDownload.textContent = `download ${t.fileName} (${fmtBytes(blob.size)})`;
    els.bulkDownload.hidden = false;
  }
  drawBulk();
}

function setBulkStatus(state, text) {
  if (bulk) bulk.status = state;
  els.bulkStatus.dataset.state = state;
  els.bulkStatus.textContent = text;
}

function drawBulk() {
  const t = bulk;
  if (!t) return;
  const total = t.bytes ?? (t.chunks ? t.chunks * 49152 : 0);
  els.bulkProgress.max = 1;
  els.bulkProgress.value = t.chunks ? t.have / t.chunks : (t.end ? 1 : 0);
  els.bulkBytes.textContent = `${fmtBytes(t.received)} / ${total ? fmtBytes(total) : '?'}`;
  const secs = (performance.now() - t.startedAt) / 1000;
  if (secs > 0 && t.received > 0) {
    els.bulkRate.textContent = `${(t.received / 1e6 / secs).toFixed(1)} MB/s`;
  }
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function addFiles(files) {
  if (!Array.isArray(files) || files.length === 0) return;
  const group = document.createElement('optgroup');
  group.label = 'files';
  group.id = 'bulk-files';
  for (const f of files) {
    const o = document.createElement('option');
    o.value = 'file:' + f.name;
    o.textContent = `${f.name} (${fmtBytes(f.bytes)})`;
    group.append(o);
  }
  els.bulkSource.append(group);
}

// ---- start ---------------------------------------------------------------

async function main() {
  els.chatName.value = recall('xhrsse.name') || `guest-${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
  els.chatForm.addEventListener('submit', sendChat);
  els.bulkForm.addEventListener('submit', startBulk);
  els.connReconnect.addEventListener('click', () => {
    if (!conn.session) return;
    setConn('connecting');
    openStream(conn.generation);
  });
  window.addEventListener('pagehide', closeStream);
  window.addEventListener('pageshow', (e) => {
    // Back from the back/forward cache: the stream was closed on pagehide.
    if (e.persisted && conn.session) {
      setConn('reconnecting');
      openStream(conn.generation);
    }
  });
  setConn('connecting');

  let delay = RETRY_MS;
  for (;;) {
    try {
      buildChannels(await api('GET', 'channels'));
      clearError(els.appError);
      break;
    } catch (err) {
      showError(els.appError, `cannot list channels: ${errorText(err)}`);
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }
  api('GET', 'files').then(addFiles, (err) => showError(els.bulkError, `cannot list files: ${errorText(err)}`));
  // Everything is on at first: the page is a demo of all three channels.
  tuned = new Set(boxes.keys());
  await openSession(false);
}

main().catch((err) => showError(els.appError, errorText(err)));

// xhrsse browser client: one EventSource per session carries everything the
// server pushes; fetch POSTs steer it (docs/PROTOCOL.md). Plain ES module, no
// build step. URLs are relative to the page, so it also works behind a proxy
// that serves it under a path prefix. Untrusted text (chat, channel characters, file names, server
// error messages) only ever reaches the page through textContent or text
// nodes, never as markup.
//
// The tabs of one origin share one session and one stream (see share.js and
// the "tabs" section below): the leader tab holds the EventSource and relays
// every event to the others; every tab POSTs for itself. Each tab keeps its
// own view: the channels it shows (its wish; the session is tuned to the
// union of all tabs' wishes, and each tab drops the ticks of channels it does
// not show) and its own bulk transfer (chunks carry their transfer id). A
// page alone, or in a browser without Web Locks, behaves as a tab with no
// others.

import { sha256Hex } from './sha256.js';
import { TabGroup, supported as sharingSupported } from './share.js';
import { Feed, isPublished } from './published.js';

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
  conn: $('conn'),
  connTabs: $('conn-tabs'),
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
  es: null, // the EventSource of the session (the leader's only)
  generation: 0, // bumped on every new session, so stale answers are ignored
  fresh: false, // the session replaces one the server forgot
  lastId: '', // the last event id seen on the session, for resuming
  state: '', // the state shown, and its detail: a new follower is told them
  detail: '',
};

/**
 * setConn shows a state of the stream. The leader tells its followers, who
 * show the same: there is one stream.
 */
function setConn(state, detail) {
  conn.state = state;
  conn.detail = detail || '';
  showConn(state, detail);
  relay({ t: 'conn', state, detail: conn.detail });
}

function showConn(state, detail) {
  if (!Object.hasOwn(STATES, state)) return;
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

function showSession(id) {
  if (id) {
    els.connSession.textContent = shortID(id);
    els.connSession.dataset.session = id; // the page's own; tests steer it from outside
  } else {
    els.connSession.textContent = '–';
    delete els.connSession.dataset.session;
  }
}

/**
 * openSession asks for a session tuned to what the tabs have on and attaches
 * its stream. It keeps trying, backing off, until it gets one or a newer call
 * supersedes it.
 */
async function openSession(fresh) {
  const gen = ++conn.generation;
  closeStream();
  conn.session = '';
  conn.lastId = '';
  conn.fresh = fresh;
  showSession('');
  relayState();
  let delay = RETRY_MS;
  for (;;) {
    try {
      const created = await api('POST', 'sessions', { channels: wantedChannels() });
      if (gen !== conn.generation) return;
      clearError(els.appError);
      conn.session = created.session;
      showSession(created.session);
      applyTuned(created.channels, true);
      relayState();
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
  // When this request was sent: a request of ours that arrives late never
  // replaces this stream (PROTOCOL.md "Resuming").
  url += '&at=' + Date.now();
  const es = new EventSource(url);
  conn.es = es;
  // mine wraps a listener so that it acts only for the current stream; the
  // stream's events (MessageEvents) are relayed to the followers, once: the
  // listeners of the connection's own open and error do not relay.
  const mine = (fn, relays = true) => (e) => {
    if (conn.es !== es || gen !== conn.generation) return;
    if (e.lastEventId) conn.lastId = e.lastEventId;
    if (relays && e instanceof MessageEvent) {
      relay({ t: 'ev', s: conn.session, id: e.lastEventId, name: e.type, data: e.data });
    }
    fn(e);
  };
  es.addEventListener('open', mine(() => {
    delay = RETRY_MS;
  }, false));
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
        loseTransfers('the session was lost');
        openSession(true);
      });
    } else {
      // A network error: EventSource reconnects by itself after the server's
      // retry, sending Last-Event-ID, and the server resumes the session.
      setConn('reconnecting');
    }
  }, false));
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
      loseTransfers('the session expired');
      openSession(true);
    } else {
      setConn('reconnecting', `server: ${d.reason}`);
    }
  }));
  for (const box of boxes.values()) {
    es.addEventListener(box.name, mine((e) => onTick(box.name, e.data)));
  }
}

/** reconnect is the reconnect button: a follower asks the leader. */
function reconnect() {
  if (tabs.role === 'follower') {
    tabs.group.post({ t: 'reconnect' });
    return;
  }
  if (!conn.session) return;
  setConn('connecting');
  openStream(conn.generation);
}

// ---- channels ------------------------------------------------------------

/** boxes maps a channel name to its box on the page. */
const boxes = new Map();
// tuned is the server's last word on the session's channels: with other tabs
// it is the union of every tab's wish. wish is this tab's own tune set, the
// channels it shows; pending holds the user's change of a channel while its
// POST is on the way.
let tuned = new Set();
let wish = new Set();
const pending = new Map();

/** wantedChannels is what a new session should be tuned to: every tab's wish. */
function wantedChannels() {
  const want = new Set(wish);
  for (const [name, on] of pending) {
    if (on) want.add(name);
    else want.delete(name);
  }
  for (const w of tabs.others.values()) for (const name of w) want.add(name);
  return [...want].filter((name) => boxes.has(name));
}

/** wantedByAnyTab reports whether this tab or another wants the channel. */
function wantedByAnyTab(name) {
  if (wish.has(name)) return true;
  for (const w of tabs.others.values()) if (w.has(name)) return true;
  return false;
}

/** shownOn reports whether this tab shows the channel as on. */
function shownOn(name) {
  return wish.has(name) && (!conn.session || tuned.has(name));
}

function buildChannels(list) {
  // Ticker cards side by side; published cards below them, full width.
  const tickers = document.createElement('div');
  tickers.className = 'channel-grid';
  const feeds = document.createElement('div');
  feeds.className = 'channel-feeds';
  els.channels.replaceChildren(tickers, feeds);
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
    box.el.dataset.kind = isPublished(ch) ? 'published' : 'ticker';

    const head = document.createElement('div');
    head.className = 'channel-head';
    const h = document.createElement('h3');
    h.id = idp + '-title';
    h.textContent = ch.title || ch.name;
    const meta = document.createElement('span');
    meta.className = 'channel-meta';
    meta.textContent = isPublished(ch)
      ? `${ch.name} · published`
      : `${ch.name} · ${ch.rate}/s · ${ch.width} cell${ch.width === 1 ? '' : 's'}`;
    box.toggle = document.createElement('button');
    box.toggle.type = 'button';
    box.toggle.id = idp + '-toggle';
    box.toggle.className = 'toggle';
    box.toggle.setAttribute('aria-pressed', 'false');
    box.toggle.setAttribute('aria-label', `${ch.title || ch.name} on`);
    box.toggle.textContent = 'off';
    box.toggle.addEventListener('click', () => toggleChannel(box));
    head.append(h, meta, box.toggle);

    let screen;
    if (isPublished(ch)) {
      // Lines of text from publishers: a list the reader can scroll back.
      box.feed = new Feed(idp + '-lines');
      screen = box.feed.el;
      screen.setAttribute('aria-labelledby', h.id);
    } else {
      screen = document.createElement('div');
      screen.className = 'channel-screen';
      screen.setAttribute('aria-hidden', 'true'); // a stream of characters is noise to a screen reader
      box.screen = document.createElement('div');
      box.screen.className = 'channel-text';
      box.screen.id = idp + '-text';
      box.screen.lang = 'und';
      screen.append(box.screen);
    }

    box.counter = document.createElement('span');
    box.counter.className = 'channel-count';
    box.counter.id = idp + '-count';
    box.counter.dataset.count = '0';
    box.counter.textContent = '0 characters';

    box.el.append(head, screen, box.counter);
    box.el.setAttribute('aria-labelledby', h.id);
    (box.feed ? feeds : tickers).append(box.el);
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

/** onTick takes a channel's characters: a tab counts only those it shows. */
function onTick(name, data) {
  const box = boxes.get(name);
  if (box && wish.has(name)) tick(box, data);
}

function tick(box, data) {
  if (box.feed) {
    box.feed.add(data);
    redraw(box.draw);
    return;
  }
  // Count characters, not code units: channel two's ideographs may be pairs.
  let n = 0;
  for (const _ of data) n++;
  box.count += n;
  box.pendingText = keepTail(box.pendingText + data, MAX_CHARS);
  redraw(box.draw);
}

function drawBox(box) {
  if (box.feed) {
    box.feed.draw();
    box.counter.dataset.count = String(box.feed.count);
    box.counter.textContent = `${box.feed.count} event${box.feed.count === 1 ? '' : 's'}`;
    return;
  }
  if (box.pendingText) {
    box.text = keepTail(box.text + box.pendingText, MAX_CHARS);
    box.pendingText = '';
    box.screen.textContent = box.text;
  }
  box.counter.dataset.count = String(box.count);
  box.counter.textContent = `${box.count} characters`;
}

/**
 * applyTuned takes the server's word on the session's channels. A channel
 * tuned out leaves every tab's wish: a tab tunes out only what no other tab
 * wants, so it was that or a client outside the tabs. A channel tuned in that
 * no tab asked for came from outside too, and every tab shows it. A baseline
 * (a new session, a tab joining) is taken as it is.
 */
function applyTuned(list, baseline = false) {
  const next = new Set(list || []);
  if (!baseline) {
    for (const name of tuned) {
      if (!next.has(name) && !pending.has(name)) wish.delete(name);
    }
    for (const name of next) {
      if (!tuned.has(name) && !pending.has(name) && !wantedByAnyTab(name)) wish.add(name);
    }
  }
  tuned = next;
  for (const box of boxes.values()) drawToggle(box);
}

function drawToggle(box) {
  const on = shownOn(box.name);
  const want = pending.has(box.name) ? pending.get(box.name) : on;
  box.el.dataset.on = String(on);
  box.toggle.setAttribute('aria-pressed', String(want));
  box.toggle.setAttribute('aria-busy', String(pending.has(box.name)));
  box.toggle.textContent = want ? 'on' : 'off';
}

async function toggleChannel(box) {
  const name = box.name;
  const want = !(pending.has(name) ? pending.get(name) : shownOn(name));
  if (!conn.session) {
    // No session right now: the wish is what the next session will ask for.
    if (want) wish.add(name);
    else wish.delete(name);
    announceWish();
    drawToggle(box);
    return;
  }
  await tune(name, want, true);
}

/**
 * tune changes this tab's wish for a channel and tunes the shared session
 * as it needs: in if the session lacks the channel, out only if no other
 * open tab wants it (otherwise this tab just stops showing it). The box shows
 * the change once the server has confirmed it, as a page alone always did.
 * A tune-in is announced to the other tabs before its POST, so that they do
 * not take the tuned event for a change from outside. With revert, a failed
 * tune-in takes the wish back.
 */
async function tune(name, on, revert) {
  const box = boxes.get(name);
  const session = conn.session;
  pending.set(name, on);
  if (on && !wish.has(name)) {
    wish.add(name);
    announceWish();
  }
  drawToggle(box);
  try {
    const post = on ? !tuned.has(name) : !(await othersWant(name));
    if (post) {
      const res = await api('POST', `sessions/${encodeURIComponent(session)}/channels`, { channel: name, on });
      if (session === conn.session) applyTuned(res.channels);
    }
    if (!on && pending.get(name) === on && wish.has(name)) {
      wish.delete(name);
      announceWish();
    }
    clearError(els.channelsError);
  } catch (err) {
    if (on && revert && pending.get(name) === on) {
      wish.delete(name);
      announceWish();
    }
    showError(els.channelsError, `${name}: ${errorText(err)}`);
  } finally {
    if (pending.get(name) === on) pending.delete(name);
    drawToggle(box);
  }
}

/** ensureTuned tunes the session in to every channel this tab wants. */
function ensureTuned() {
  if (!conn.session) return;
  for (const name of wish) {
    if (boxes.has(name) && !tuned.has(name) && !pending.has(name)) tune(name, true, false);
  }
}

/**
 * pruneTuning, in the leader, tunes the session out of the channels no live
 * tab wants any more: those of a tab that closed.
 */
async function pruneTuning() {
  if (tabs.role !== 'leader' || !conn.session) return;
  await forgetClosedTabs();
  const want = new Set(wantedChannels());
  const session = conn.session;
  for (const name of [...tuned]) {
    if (want.has(name) || pending.has(name) || session !== conn.session) continue;
    try {
      const res = await api('POST', `sessions/${encodeURIComponent(session)}/channels`, { channel: name, on: false });
      if (session === conn.session) applyTuned(res.channels);
    } catch {
      // Extra ticks are dropped by the tabs anyway; the next tab to close
      // tries again.
    }
  }
}

// ---- chat ----------------------------------------------------------------

// seen holds "id|at" of the messages shown, so the history replayed to a new
// session does not show twice; a restarted server numbers from 1 again, and
// its messages differ in time.
const seen = new Set();
const chatQueue = [];
// recentChats are the last messages this tab received, which the leader hands
// to a tab that joins: the server replays history only to a new session.
const recentChats = [];

function addChat(m) {
  chatQueue.push(m);
  if (chatQueue.length > MAX_CHAT) chatQueue.splice(0, chatQueue.length - MAX_CHAT);
  recentChats.push(m);
  if (recentChats.length > MAX_CHAT) recentChats.splice(0, recentChats.length - MAX_CHAT);
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

// bulk is the transfer the panel shows; one at a time, this tab's own: its
// chunks are told from other tabs' by their transfer id, which the POST's
// answer names.
let bulk = null;
let downloadURL = '';

// The stream and the POST travel apart, so a transfer's first chunks (even
// its bulk-end) may arrive before the answer that names it; on a shared
// stream they may as well be another tab's. While one of this tab's bulk
// POSTs waits for its answer, chunks of transfers nobody here has claimed
// are held, by transfer id, up to UNCLAIMED_MAX characters of base64; the
// answer claims its own and the rest are dropped. A transfer whose held
// chunks overflowed reports them missing rather than passing unverified.
const UNCLAIMED_MAX = 64 << 20;
const unclaimed = new Map();
let unclaimedSize = 0;
let bulkPosts = 0; // this tab's bulk POSTs waiting for their answer

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
  bulkPosts++;
  try {
    const acc = await api('POST', `sessions/${encodeURIComponent(conn.session)}/bulk`, body);
    if (bulk !== t || t.done) return;
    t.id = acc.transfer;
    t.bytes = acc.bytes;
    t.chunks = acc.chunks;
    t.sha256 = acc.sha256;
    if (t.status === 'requesting') setBulkStatus('receiving', 'receiving…');
    claim(t);
    if (t.end) await finishBulk(t);
  } catch (err) {
    if (bulk !== t) return;
    t.done = true;
    els.bulkStart.disabled = false;
    setBulkStatus('failed', 'failed');
    showError(els.bulkError, errorText(err));
  } finally {
    if (--bulkPosts === 0) {
      unclaimed.clear();
      unclaimedSize = 0;
    }
  }
}

/** ours returns this tab's transfer in progress if it has this id. */
function ours(id) {
  const t = bulk;
  return t && !t.done && t.id !== null && t.id === id ? t : null;
}

/** hold keeps a bulk event of an unclaimed transfer while a POST waits. */
function hold(name, d) {
  if (bulkPosts === 0 || typeof d.transfer !== 'string') return;
  const size = name === 'bulk' && typeof d.data === 'string' ? d.data.length : 0;
  if (unclaimedSize + size > UNCLAIMED_MAX) return;
  let held = unclaimed.get(d.transfer);
  if (!held) {
    held = [];
    unclaimed.set(d.transfer, held);
  }
  held.push([name, d]);
  unclaimedSize += size;
}

/** claim takes the held events of t, whose id the POST's answer just named. */
function claim(t) {
  const held = unclaimed.get(t.id);
  if (!held) return;
  unclaimed.delete(t.id);
  for (const [name, d] of held) {
    if (name === 'bulk') {
      unclaimedSize -= d.data.length;
      bulkChunk(d);
    } else {
      bulkEnd(d);
    }
  }
}

function bulkChunk(d) {
  const t = ours(d.transfer);
  if (!t) {
    hold('bulk', d);
    return;
  }
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
  if (!t) {
    hold('bulk-end', d);
    return;
  }
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
  els.bulkStatus.dataset.transfer = t.id;
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

// ---- tabs ----------------------------------------------------------------

// The tabs of this origin share one session and one stream (share.js): the
// leader holds the EventSource and posts every event to the others, which
// handle it as if their own EventSource had brought it. Messages, each signed
// with the sender's tab id:
//
//   hello {wish}           a tab opened; everyone answers with its wish, the
//                          leader also with state
//   wish {wish}            a tab's tune set changed
//   gone                   a tab is closing (the leader then tunes out what
//                          nobody wants any more)
//   reconnect              a follower's reconnect button, for the leader
//   state {to?, session, lastId, tuned, conn?, chats?}
//                          the leader's session: to a tab that said hello
//                          (with the chat so far), or to all when it changes
//   conn {state, detail}   the stream's state, as the leader shows it
//   ev {s, id, name, data} one event of the stream
//   lost {why}             the session is gone, and every transfer with it
//
// When the leader closes, the browser hands its lock to the next tab, which
// opens the EventSource with the last event id it handled: the server replays
// what happened in between.

const tabs = {
  group: null, // the TabGroup, or null when this tab is alone
  role: 'solo', // 'solo' (no sharing), 'leader' or 'follower'
  others: new Map(), // id of another open tab -> the channels it wants
};

const ROLES = {
  solo: '',
  leader: 'this tab holds the stream',
  follower: 'stream shared by another tab',
};

function showRole() {
  els.conn.dataset.role = tabs.role;
  els.connTabs.textContent = ROLES[tabs.role];
  els.connTabs.hidden = tabs.role === 'solo';
}

/** relay sends msg to the followers, if this tab leads any. */
function relay(msg) {
  if (tabs.role === 'leader' && tabs.others.size > 0) tabs.group.post(msg);
}

/** relayState tells the followers the leader's session (it changed). */
function relayState() {
  relay({ t: 'state', session: conn.session, lastId: conn.lastId, tuned: [...tuned] });
}

/** loseTransfers fails the transfers of every tab: the session is gone. */
function loseTransfers(why) {
  bulkLost(why);
  relay({ t: 'lost', why });
}

function announceWish() {
  if (tabs.group) tabs.group.post({ t: 'wish', wish: [...wish] });
}

/** forgetClosedTabs drops the wishes of tabs that closed without a word. */
async function forgetClosedTabs() {
  if (!tabs.group) return;
  let alive;
  try {
    alive = await tabs.group.alive();
  } catch {
    return;
  }
  for (const id of [...tabs.others.keys()]) if (!alive.has(id)) tabs.others.delete(id);
}

/** othersWant resolves whether another open tab wants the channel. */
async function othersWant(name) {
  if (!tabs.group) return false;
  await forgetClosedTabs();
  for (const w of tabs.others.values()) if (w.has(name)) return true;
  return false;
}

function channelList(v) {
  return Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
}

function onTabMessage(m) {
  switch (m.t) {
    case 'hello':
      tabs.others.set(m.from, new Set(channelList(m.wish)));
      tabs.group.post({ t: 'wish', wish: [...wish] });
      if (tabs.role === 'leader') {
        tabs.group.post({
          t: 'state', to: m.from, session: conn.session, lastId: conn.lastId, tuned: [...tuned],
          conn: { state: conn.state, detail: conn.detail }, chats: recentChats,
        });
      }
      return;
    case 'wish':
      tabs.others.set(m.from, new Set(channelList(m.wish)));
      return;
    case 'gone':
      tabs.others.delete(m.from);
      pruneTuning();
      return;
    case 'reconnect':
      if (tabs.role === 'leader') reconnect();
      return;
  }
  if (tabs.role !== 'follower') return;
  switch (m.t) {
    case 'state':
      followState(m);
      break;
    case 'conn':
      conn.state = String(m.state);
      conn.detail = String(m.detail || '');
      showConn(conn.state, conn.detail);
      break;
    case 'lost':
      bulkLost(String(m.why));
      break;
    case 'ev':
      followEvent(m);
      break;
  }
}

/** followState takes the leader's session, as a follower. */
function followState(m) {
  if (m.to !== undefined && m.to !== tabs.group.id) return;
  // A tab joining, or a new session, takes the tuned set as it is.
  const baseline = m.to !== undefined || m.session !== conn.session;
  if (m.session !== conn.session) {
    if (conn.session) bulkLost('the session was lost');
    conn.session = typeof m.session === 'string' ? m.session : '';
    conn.lastId = typeof m.lastId === 'string' ? m.lastId : '';
    showSession(conn.session);
  }
  applyTuned(channelList(m.tuned), baseline);
  if (Array.isArray(m.chats)) for (const c of m.chats) addChat({ ...c, history: true });
  if (m.conn && typeof m.conn === 'object') {
    conn.state = String(m.conn.state);
    conn.detail = String(m.conn.detail || '');
    showConn(conn.state, conn.detail);
  }
  ensureTuned();
}

// followHandlers handles the events a follower acts on; the leader's conn
// messages stand for the connection's own (session, gap, bye).
const followHandlers = new Map([
  ['session', (d) => applyTuned(JSON.parse(d).channels)],
  ['tuned', (d) => applyTuned(JSON.parse(d).channels)],
  ['chat', (d) => addChat(JSON.parse(d))],
  ['bulk', (d) => bulkChunk(JSON.parse(d))],
  ['bulk-end', (d) => bulkEnd(JSON.parse(d))],
]);

/** followEvent handles one relayed event, once, in order. */
function followEvent(m) {
  if (!conn.session || m.s !== conn.session || typeof m.name !== 'string' || typeof m.data !== 'string') return;
  const id = Number(m.id);
  if (m.name !== 'session' && m.name !== 'bye') {
    // Ids only grow on a session: anything else was handled already.
    if (conn.lastId !== '' && !(id > Number(conn.lastId))) return;
    conn.lastId = String(m.id);
  }
  const fn = followHandlers.get(m.name);
  if (fn) fn(m.data);
  else if (boxes.has(m.name)) onTick(m.name, m.data);
}

/** hello introduces this tab to the others and asks the leader for state. */
function hello() {
  tabs.group.post({ t: 'hello', wish: [...wish] });
}

/**
 * lead makes this follower the leader: the previous one closed. It opens the
 * stream where the relayed events stopped, so nothing is lost in between,
 * and tunes out what only the previous leader wanted.
 */
function lead() {
  tabs.role = 'leader';
  showRole();
  if (conn.state === 'replaced') {
    // A client outside the tabs holds the session: wait for the user.
    return;
  }
  if (conn.session) {
    setConn('reconnecting', 'taking over the stream');
    openStream(conn.generation);
    pruneTuning();
    ensureTuned();
  } else {
    openSession(false);
  }
}

// ---- start ---------------------------------------------------------------

async function main() {
  els.chatName.value = recall('xhrsse.name') || `guest-${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
  els.chatForm.addEventListener('submit', sendChat);
  els.bulkForm.addEventListener('submit', startBulk);
  els.connReconnect.addEventListener('click', reconnect);
  window.addEventListener('pagehide', () => {
    closeStream();
    if (tabs.group) tabs.group.post({ t: 'gone' });
  });
  window.addEventListener('pageshow', (e) => {
    // Back from the back/forward cache: the stream was closed on pagehide.
    if (!e.persisted) return;
    if (tabs.role === 'follower') {
      hello();
    } else if (conn.session) {
      setConn('reconnecting');
      openStream(conn.generation);
    }
  });
  showRole();
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
  // Everything is on at first: the page is a demo of every channel.
  wish = new Set(boxes.keys());
  for (const box of boxes.values()) drawToggle(box);
  if (sharingSupported()) {
    tabs.group = new TabGroup(onTabMessage);
    const leads = await tabs.group.elect(lead);
    tabs.role = leads ? 'leader' : 'follower';
    showRole();
    if (!leads) {
      hello();
      return;
    }
  }
  await openSession(false);
}

main().catch((err) => showError(els.appError, errorText(err)));

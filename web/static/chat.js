// Chat: the log of everyone's messages on the session (the server replays
// the recent history to a new session), and the form that sends this tab's.
// Names and texts are untrusted: they reach the page through textContent.

import { api, errorText, sessionPath } from './api.js';
import { byId, clearError, clock, nearBottom, redraw, showError } from './dom.js';

// MAX_CHAT bounds the chat log, in messages.
const MAX_CHAT = 200;

/** Chat is the chat panel. */
export class Chat {
  // seen holds "id|at" of the messages shown, so the history replayed to a
  // new session does not show twice; a restarted server numbers from 1
  // again, and its messages differ in time.
  #seen = new Set();
  #queue = []; // messages to show at the next frame
  // recent are the last messages this tab received, which the leader hands
  // to a tab that joins: the server replays history only to a new session.
  #recent = [];
  #drawSoon = () => this.#draw();
  #session;
  #log;
  #form;
  #nameInput;
  #textInput;
  #sendButton;
  #errorEl;

  /** session returns the current session's id ('' while there is none). */
  constructor(session) {
    this.#session = session;
    this.#log = byId('chat-log');
    this.#form = byId('chat-form');
    this.#nameInput = byId('chat-name');
    this.#textInput = byId('chat-text');
    this.#sendButton = byId('chat-send');
    this.#errorEl = byId('chat-error');
    this.#nameInput.value = recall('xhrsse.name') || `guest-${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
    this.#form.addEventListener('submit', (e) => this.#send(e));
  }

  /** add takes a message of a chat event; history marks one from before. */
  add(m) {
    this.#queue.push(m);
    if (this.#queue.length > MAX_CHAT) this.#queue.splice(0, this.#queue.length - MAX_CHAT);
    this.#recent.push(m);
    if (this.#recent.length > MAX_CHAT) this.#recent.splice(0, this.#recent.length - MAX_CHAT);
    redraw(this.#drawSoon);
  }

  /** recent returns the last messages received, oldest first. */
  recent() {
    return [...this.#recent];
  }

  #draw() {
    const log = this.#log;
    const atBottom = nearBottom(log);
    const frag = document.createDocumentFragment();
    for (const m of this.#queue.splice(0)) {
      const key = `${m.id}|${m.at}`;
      if (this.#seen.has(key)) continue;
      this.#seen.add(key);
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
      this.#seen.delete(log.firstElementChild.dataset.key);
      log.firstElementChild.remove();
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  async #send(e) {
    e.preventDefault();
    const text = this.#textInput.value;
    const name = this.#nameInput.value.trim();
    if (!text.trim() || !name) return;
    const session = this.#session();
    if (!session) {
      showError(this.#errorEl, 'not connected yet');
      return;
    }
    remember('xhrsse.name', name);
    this.#sendButton.disabled = true;
    try {
      await api('POST', sessionPath(session, 'chat'), { name, text });
      if (this.#textInput.value === text) this.#textInput.value = '';
      clearError(this.#errorEl);
    } catch (err) {
      showError(this.#errorEl, errorText(err));
    } finally {
      this.#sendButton.disabled = false;
    }
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

// The page's header: the state of the stream, the session it carries, this
// tab's part in sharing it, the reconnect button, the page-wide error line,
// and the connection log below (the last MAX_HISTORY changes, timed).

import { byId, clearError, clock, showError } from './dom.js';

// MAX_HISTORY bounds the connection log, in lines.
const MAX_HISTORY = 30;

const STATES = {
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  resumed: 'resumed',
  gap: 'gap',
  'new-session': 'new session',
  replaced: 'replaced by another tab',
};

const ROLES = {
  solo: '',
  leader: 'this tab holds the stream',
  follower: 'stream shared by another tab',
};

/** Status shows the connection; it draws what it is told and remembers it. */
export class Status {
  #state = '';
  #detail = '';
  #el;
  #stateEl;
  #sessionEl;
  #reconnectButton;
  #tabsEl;
  #historyEl;
  #errorEl;

  constructor() {
    this.#el = byId('conn');
    this.#stateEl = byId('conn-state');
    this.#sessionEl = byId('conn-session');
    this.#reconnectButton = byId('conn-reconnect');
    this.#tabsEl = byId('conn-tabs');
    this.#historyEl = byId('conn-history');
    this.#errorEl = byId('app-error');
  }

  /** state is the state shown (a key of STATES), and detail its detail. */
  get state() {
    return this.#state;
  }

  get detail() {
    return this.#detail;
  }

  /** show shows a state of the stream and logs it, once while it lasts. */
  show(state, detail) {
    this.#state = state;
    this.#detail = detail || '';
    if (!Object.hasOwn(STATES, state)) return;
    const label = STATES[state] + (this.#detail ? ` (${this.#detail})` : '');
    // A server that stays down fails every retry: one line says it.
    if (this.#stateEl.dataset.state === state && this.#stateEl.textContent === label) return;
    this.#stateEl.dataset.state = state;
    this.#stateEl.textContent = label;
    this.#reconnectButton.hidden = state !== 'replaced';
    const li = document.createElement('li');
    li.dataset.state = state;
    const at = document.createElement('time');
    const now = new Date();
    at.dateTime = now.toISOString();
    at.textContent = clock(now);
    li.append(at, ' ', label);
    this.#historyEl.append(li);
    while (this.#historyEl.childElementCount > MAX_HISTORY) this.#historyEl.firstElementChild.remove();
  }

  /** showSession shows the session id, short, or a dash for none. */
  showSession(id) {
    if (id) {
      this.#sessionEl.textContent = id.length > 8 ? id.slice(0, 8) + '…' : id;
      this.#sessionEl.dataset.session = id; // the page's own; tests steer it from outside
    } else {
      this.#sessionEl.textContent = '–';
      delete this.#sessionEl.dataset.session;
    }
  }

  /** showRole shows whether this tab holds the stream or shares another's. */
  showRole(role) {
    this.#el.dataset.role = role;
    this.#tabsEl.textContent = ROLES[role];
    this.#tabsEl.hidden = role === 'solo';
  }

  /** onReconnect runs fn when the user presses the reconnect button. */
  onReconnect(fn) {
    this.#reconnectButton.addEventListener('click', fn);
  }

  /** showError shows a page-wide error: no channels, no session. */
  showError(text) {
    showError(this.#errorEl, text);
  }

  clearError() {
    clearError(this.#errorEl);
  }
}

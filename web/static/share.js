// Tab sharing: the tabs of one origin share one stream. Over HTTP/1.1 a
// browser opens at most six connections to a host, and every open
// EventSource holds one for good: without sharing, the seventh tab's stream
// (and every request after it) waits for ever. So one tab, the leader, holds
// the EventSource and relays what it carries to the others over a
// BroadcastChannel; the others (followers) steer the same session with their
// own POSTs.
//
// The leader is whoever holds the Web Lock "xhrsse-leader". The browser
// releases a lock when its tab closes, crashes or navigates away, and grants
// it to the next tab waiting in line: no heartbeats, no timers (which a
// browser throttles in background tabs), no split brain. Each tab also holds
// a lock of its own, "xhrsse-tab-<id>", so any tab can list the tabs alive.
//
// Web Locks exist only in secure contexts (https, or http on localhost and
// 127.0.0.1). Where they are missing, supported() is false and each tab keeps
// a stream of its own, as before sharing existed.

const LEADER_LOCK = 'xhrsse-leader';
const TAB_LOCK = 'xhrsse-tab-';
const CHANNEL = 'xhrsse';

// forever is what a lock callback returns to hold its lock for the life of
// the tab.
const forever = new Promise(() => {});

/** supported reports whether this page can share a stream with other tabs. */
export function supported() {
  return typeof BroadcastChannel === 'function' &&
    typeof navigator === 'object' && navigator.locks !== undefined &&
    typeof navigator.locks.request === 'function' && typeof navigator.locks.query === 'function';
}

/**
 * TabGroup is this tab's membership of the origin's tabs: its id, its
 * messages to the others, and its place in the line for leadership.
 */
export class TabGroup {
  /** onMessage receives every message another tab posts. */
  constructor(onMessage) {
    this.id = randomID();
    this.bc = new BroadcastChannel(CHANNEL);
    this.bc.onmessage = (e) => {
      if (e.data && typeof e.data === 'object' && typeof e.data.from === 'string') onMessage(e.data);
    };
    navigator.locks.request(TAB_LOCK + this.id, () => forever).catch(() => {});
  }

  /**
   * elect resolves true if this tab leads now, false if another tab does;
   * in that case onLead runs when the leadership comes to this tab later.
   */
  elect(onLead) {
    return new Promise((resolve) => {
      navigator.locks.request(LEADER_LOCK, { ifAvailable: true }, (lock) => {
        if (lock) {
          resolve(true);
          return forever;
        }
        resolve(false);
        navigator.locks.request(LEADER_LOCK, () => {
          onLead();
          return forever;
        }).catch(() => {});
        return undefined;
      }).catch(() => resolve(false));
    });
  }

  /** post sends msg to every other tab of the origin, signed with our id. */
  post(msg) {
    msg.from = this.id;
    this.bc.postMessage(msg);
  }

  /** alive resolves to the ids of the tabs of the origin that are open now. */
  async alive() {
    const state = await navigator.locks.query();
    const ids = new Set();
    for (const l of state.held || []) {
      if (typeof l.name === 'string' && l.name.startsWith(TAB_LOCK)) ids.add(l.name.slice(TAB_LOCK.length));
    }
    return ids;
  }
}

function randomID() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// Tab sharing: the tabs of this origin share one session and one stream.
// share.js finds the leader (a Web Lock) and carries messages between tabs
// (a BroadcastChannel); this module is what the tabs say to each other. The
// leader holds the EventSource and posts every event to the others, which
// handle it as if their own EventSource had brought it; every tab POSTs for
// itself. Messages, each signed with the sender's tab id:
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
// what happened in between. A page alone, or in a browser without Web Locks,
// is a tab with no others ("solo").

import { TabGroup, supported as sharingSupported } from './share.js';

/** Tabs is this tab's part among the origin's tabs. */
export class Tabs {
  #group = null; // the TabGroup, or null when this tab is alone
  #role = 'solo'; // 'solo' (no sharing), 'leader' or 'follower'
  #others = new Map(); // id of another open tab -> the channels it wants
  #status;
  // The parts of the page, from join on.
  #conn = null;
  #channels = null;
  #chat = null;
  #bulk = null;

  constructor(status) {
    this.#status = status;
    status.showRole(this.#role);
  }

  /**
   * join joins the origin's tabs with the page's parts, and resolves true if
   * this tab is to open the session: it leads, or it is alone.
   */
  async join({ conn, channels, chat, bulk }) {
    this.#conn = conn;
    this.#channels = channels;
    this.#chat = chat;
    this.#bulk = bulk;
    if (!sharingSupported()) return true;
    this.#group = new TabGroup((m) => this.#onMessage(m));
    const leads = await this.#group.elect(() => this.#lead());
    this.#setRole(leads ? 'leader' : 'follower');
    if (!leads) this.hello();
    return leads;
  }

  /** role is 'solo' (no sharing), 'leader' or 'follower'. */
  get role() {
    return this.#role;
  }

  /** askReconnect is a follower's reconnect button: the leader reconnects. */
  askReconnect() {
    this.#group.post({ t: 'reconnect' });
  }

  /** leave tells the others this tab is going (closed, or into the cache). */
  leave() {
    if (this.#group) this.#group.post({ t: 'gone' });
  }

  /** hello introduces this tab to the others and asks the leader for state. */
  hello() {
    this.#group.post({ t: 'hello', wish: this.#channels.wish() });
  }

  // ---- what the channels ask of the other tabs

  /** wishes yields the channel sets the other open tabs want. */
  wishes() {
    return this.#others.values();
  }

  /** announceWish tells the other tabs which channels this tab shows. */
  announceWish(wish) {
    if (this.#group) this.#group.post({ t: 'wish', wish });
  }

  /** othersWant resolves whether another open tab wants the channel. */
  async othersWant(name) {
    if (!this.#group) return false;
    await this.forgetClosed();
    for (const w of this.#others.values()) if (w.has(name)) return true;
    return false;
  }

  /** forgetClosed drops the wishes of tabs that closed without a word. */
  async forgetClosed() {
    if (!this.#group) return;
    let alive;
    try {
      alive = await this.#group.alive();
    } catch {
      return;
    }
    for (const id of [...this.#others.keys()]) if (!alive.has(id)) this.#others.delete(id);
  }

  // ---- what the leader's connection tells the followers

  relayConn(state, detail) {
    this.#relay({ t: 'conn', state, detail });
  }

  relayEvent(session, id, name, data) {
    this.#relay({ t: 'ev', s: session, id, name, data });
  }

  /** relayState tells the followers the leader's session (it changed). */
  relayState() {
    if (!this.#relaying()) return;
    this.#relay({ t: 'state', session: this.#conn.session, lastId: this.#conn.lastId, tuned: this.#channels.tuned() });
  }

  relayLost(why) {
    this.#relay({ t: 'lost', why });
  }

  /** relaying reports whether this tab leads others, which want to hear. */
  #relaying() {
    return this.#role === 'leader' && this.#others.size > 0;
  }

  /** relay sends msg to the followers, if this tab leads any. */
  #relay(msg) {
    if (this.#relaying()) this.#group.post(msg);
  }

  #setRole(role) {
    this.#role = role;
    this.#status.showRole(role);
  }

  /**
   * lead makes this follower the leader: the previous one closed. It opens
   * the stream where the relayed events stopped, so nothing is lost in
   * between, and tunes out what only the previous leader wanted.
   */
  #lead() {
    this.#setRole('leader');
    if (this.#status.state === 'replaced') {
      // A client outside the tabs holds the session: wait for the user.
      return;
    }
    if (this.#conn.session) {
      this.#conn.reattach('reconnecting', 'taking over the stream');
      this.#channels.prune();
      this.#channels.ensureTuned();
    } else {
      this.#conn.open(false);
    }
  }

  #onMessage(m) {
    switch (m.t) {
      case 'hello':
        this.#others.set(m.from, new Set(channelList(m.wish)));
        this.#group.post({ t: 'wish', wish: this.#channels.wish() });
        if (this.#role === 'leader') {
          this.#group.post({
            t: 'state', to: m.from, session: this.#conn.session, lastId: this.#conn.lastId,
            tuned: this.#channels.tuned(),
            conn: { state: this.#status.state, detail: this.#status.detail }, chats: this.#chat.recent(),
          });
        }
        return;
      case 'wish':
        this.#others.set(m.from, new Set(channelList(m.wish)));
        return;
      case 'gone':
        this.#others.delete(m.from);
        if (this.#role === 'leader') this.#channels.prune();
        return;
      case 'reconnect':
        if (this.#role === 'leader') this.#conn.reattach('connecting');
        return;
    }
    if (this.#role !== 'follower') return;
    switch (m.t) {
      case 'state':
        this.#follow(m);
        break;
      case 'conn':
        this.#status.show(String(m.state), String(m.detail || ''));
        break;
      case 'lost':
        this.#bulk.lost(String(m.why));
        break;
      case 'ev':
        this.#conn.takeRelayed(m.s, m.id, m.name, m.data);
        break;
    }
  }

  /** follow takes the leader's session, as a follower. */
  #follow(m) {
    if (m.to !== undefined && m.to !== this.#group.id) return;
    // A tab joining, or a new session, takes the tuned set as it is.
    const baseline = m.to !== undefined || m.session !== this.#conn.session;
    this.#conn.adopt(typeof m.session === 'string' ? m.session : '', typeof m.lastId === 'string' ? m.lastId : '');
    this.#channels.applyTuned(channelList(m.tuned), baseline);
    if (Array.isArray(m.chats)) for (const c of m.chats) this.#chat.add({ ...c, history: true });
    if (m.conn && typeof m.conn === 'object') this.#status.show(String(m.conn.state), String(m.conn.detail || ''));
    this.#channels.ensureTuned();
  }
}

function channelList(v) {
  return Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
}

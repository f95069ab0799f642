// The connection: the session, its one EventSource, and what happens when
// either goes away (docs/PROTOCOL.md). Every event the stream carries is
// handed to the part of the page it is for (deliver). When the tabs of the
// origin share the stream (tabs.js), only the leader tab opens the
// EventSource; it relays each event to the others, which hand it over here
// too (takeRelayed), so both paths lead to deliver.

import { APIError, RETRY_MAX_MS, RETRY_MS, api, errorText, sessionPath, sleep } from './api.js';

/**
 * Connection owns the session id, the EventSource and the id of the last
 * event handled, and tells the status line and the other tabs how it goes.
 */
export class Connection {
  #session = ''; // the session id; the capability for the stream, shown short
  #es = null; // the EventSource of the session (the leader's only)
  #generation = 0; // bumped on every new session, so stale answers are ignored
  #fresh = false; // the session replaces one the server forgot
  #lastId = ''; // the last event id seen on the session, for resuming
  #status;
  #tabs;
  #channels;
  #bulk;
  // routes says which part of the page each event of the stream is for,
  // with its data; a channel's ticks, events named after the channel, go to
  // the channels.
  #routes;

  /** The parts: the status line, the other tabs, and whom events are for. */
  constructor({ status, tabs, channels, chat, bulk }) {
    this.#status = status;
    this.#tabs = tabs;
    this.#channels = channels;
    this.#bulk = bulk;
    const tuned = (data) => channels.applyTuned(JSON.parse(data).channels);
    this.#routes = new Map([
      ['session', tuned],
      ['tuned', tuned],
      ['chat', (data) => chat.add(JSON.parse(data))],
      ['bulk', (data) => bulk.chunk(JSON.parse(data))],
      ['bulk-end', (data) => bulk.end(JSON.parse(data))],
    ]);
  }

  /** session is the current session's id, '' while there is none. */
  get session() {
    return this.#session;
  }

  /** lastId is the id of the last event handled on the session. */
  get lastId() {
    return this.#lastId;
  }

  /**
   * setState shows a state of the stream. The leader tells its followers,
   * who show the same: there is one stream.
   */
  setState(state, detail) {
    this.#status.show(state, detail);
    this.#tabs.relayConn(state, this.#status.detail);
  }

  /**
   * open asks for a session tuned to what the tabs have on and attaches its
   * stream; fresh says it replaces a session the server forgot. It keeps
   * trying, backing off, until it gets one or a newer call supersedes it.
   */
  async open(fresh) {
    const gen = ++this.#generation;
    this.close();
    this.#session = '';
    this.#lastId = '';
    this.#fresh = fresh;
    this.#status.showSession('');
    this.#tabs.relayState();
    let delay = RETRY_MS;
    for (;;) {
      try {
        const created = await api('POST', 'sessions', { channels: this.#channels.wanted() });
        if (gen !== this.#generation) return;
        this.#status.clearError();
        this.#session = created.session;
        this.#status.showSession(created.session);
        this.#channels.applyTuned(created.channels, true);
        this.#tabs.relayState();
        this.#openStream(gen);
        return;
      } catch (err) {
        if (gen !== this.#generation) return;
        this.#status.showError(`cannot open a session: ${errorText(err)}`);
        this.setState(fresh ? 'reconnecting' : 'connecting', `no session yet, retry in ${delay / 1000} s`);
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
        if (gen !== this.#generation) return;
      }
    }
  }

  /**
   * reattach opens a new stream on the session, from the last event handled,
   * showing state: the reconnect button, a tab taking the lead, a page back
   * from the back/forward cache.
   */
  reattach(state, detail) {
    if (!this.#session) return;
    this.setState(state, detail);
    this.#openStream(this.#generation);
  }

  /** close closes the stream, if this tab has one. */
  close() {
    if (this.#es) this.#es.close();
    this.#es = null;
  }

  /**
   * adopt takes the leader's session, as a follower tab; a different one
   * means the old is gone, and the transfer on it.
   */
  adopt(session, lastId) {
    if (session === this.#session) return;
    if (this.#session) this.#bulk.lost('the session was lost');
    this.#session = session;
    this.#lastId = lastId;
    this.#status.showSession(session);
  }

  /** takeRelayed handles one event the leader relayed, once, in order. */
  takeRelayed(session, id, name, data) {
    if (!this.#session || session !== this.#session || typeof name !== 'string' || typeof data !== 'string') return;
    if (name !== 'session' && name !== 'bye') {
      // Ids only grow on a session: anything else was handled already.
      if (this.#lastId !== '' && !(Number(id) > Number(this.#lastId))) return;
      this.#lastId = String(id);
    }
    // The leader's conn messages stand for the connection's own events
    // (session, gap, bye): a follower shows what the leader shows.
    this.#deliver(name, data);
  }

  /** deliver hands one event of the session to the part of the page it is for. */
  #deliver(name, data) {
    const route = this.#routes.get(name);
    if (route) route(data);
    else this.#channels.tick(name, data);
  }

  /** loseTransfers fails the transfers of every tab: the session is gone. */
  #loseTransfers(why) {
    this.#bulk.lost(why);
    this.#tabs.relayLost(why);
  }

  /** openStream attaches an EventSource to the current session. */
  #openStream(gen, delay = RETRY_MS) {
    this.close();
    // A new EventSource sends no Last-Event-ID of its own: the page carries
    // the last id it saw in the URL, so the server resumes the session.
    let url = 'events?session=' + encodeURIComponent(this.#session);
    if (this.#lastId !== '') url += '&lastEventId=' + encodeURIComponent(this.#lastId);
    // When this request was sent: a request of ours that arrives late never
    // replaces this stream (PROTOCOL.md "Resuming").
    url += '&at=' + Date.now();
    const es = new EventSource(url);
    this.#es = es;
    // mine wraps a listener so that it acts only for the current stream; the
    // stream's events (MessageEvents) are relayed to the followers, once: the
    // listeners of the connection's own open and error do not relay.
    const mine = (fn, relays = true) => (e) => {
      if (this.#es !== es || gen !== this.#generation) return;
      if (e.lastEventId) this.#lastId = e.lastEventId;
      if (relays && e instanceof MessageEvent) this.#tabs.relayEvent(this.#session, e.lastEventId, e.type, e.data);
      fn(e);
    };
    const deliver = mine((e) => this.#deliver(e.type, e.data));
    es.addEventListener('open', mine(() => {
      delay = RETRY_MS;
    }, false));
    es.addEventListener('error', mine(() => {
      if (es.readyState === EventSource.CLOSED) {
        this.#refused(gen, delay);
      } else {
        // A network error: EventSource reconnects by itself after the server's
        // retry, sending Last-Event-ID, and the server resumes the session.
        this.setState('reconnecting');
      }
    }, false));
    for (const name of [...this.#routes.keys(), ...this.#channels.names()]) {
      es.addEventListener(name, deliver);
    }
    // The session event, delivered (and relayed) above, also says how the
    // stream came back; the followers hear it as the leader shows it.
    es.addEventListener('session', mine((e) => {
      const d = JSON.parse(e.data);
      if (d.resumed) this.setState('resumed');
      else if (this.#fresh) this.setState('new-session');
      else this.setState('connected');
      this.#fresh = false;
    }, false));
    es.addEventListener('gap', mine((e) => {
      const d = JSON.parse(e.data);
      this.setState('gap', `${d.missed} events missed`);
    }));
    es.addEventListener('bye', mine((e) => {
      const d = JSON.parse(e.data);
      if (d.reason === 'replaced') {
        // Another stream took this session over; reconnecting now would only
        // take it back and start a tug of war.
        this.close();
        this.setState('replaced');
      } else if (d.reason === 'expired') {
        this.close();
        this.setState('reconnecting', 'session expired');
        this.#loseTransfers('the session expired');
        this.open(true);
      } else {
        this.setState('reconnecting', `server: ${d.reason}`);
      }
    }));
  }

  /**
   * refused handles a stream the server answered with an error status
   * instead of events; EventSource gives up on those. 404 means it forgot
   * the session; 503 (too many streams, shutting down) does not: GET
   * sessions/ID tells which, after the retry delay so a server in trouble is
   * not hammered.
   */
  async #refused(gen, delay) {
    this.close();
    this.setState('reconnecting', `stream refused, retry in ${delay / 1000} s`);
    await sleep(delay);
    if (gen !== this.#generation) return;
    let alive = false;
    try {
      await api('GET', sessionPath(this.#session));
      alive = true;
    } catch (err) {
      alive = !(err instanceof APIError && err.status === 404);
    }
    if (gen !== this.#generation) return;
    if (alive) {
      this.#openStream(gen, Math.min(delay * 2, RETRY_MAX_MS));
      return;
    }
    this.#session = ''; // toggles now change what the next session asks for
    this.setState('reconnecting', 'session lost');
    this.#loseTransfers('the session was lost');
    this.open(true);
  }
}

// The channels: a card for each (card.js), and which of them this tab shows.
// The tabs of the origin share one session (tabs.js); its tune set is the
// union of what every tab wants, so a tab tunes a channel out only when no
// other tab wants it, and drops the ticks of the channels it does not show.
//
// Three sets say what is on: tuned, the server's last word on the session;
// wish, the channels this tab shows; pending, the user's change of a channel
// while its POST is on the way.

import { api, errorText, sessionPath } from './api.js';
import { byId, clearError, showError } from './dom.js';
import { Card } from './card.js';

/** Channels is the channels panel: its cards and the session's tuning. */
export class Channels {
  #cards = new Map(); // channel name -> its Card
  #tuned = new Set();
  #wish = new Set();
  #pending = new Map(); // channel name -> on
  #session;
  #tabs;
  #el;
  #errorEl;

  /**
   * session returns the current session's id ('' while there is none); tabs
   * tells what the other tabs want and hears this tab's wish.
   */
  constructor(session, tabs) {
    this.#session = session;
    this.#tabs = tabs;
    this.#el = byId('channels');
    this.#errorEl = byId('channels-error');
  }

  /** build makes a card for each channel GET /channels lists, all shown on. */
  build(list) {
    // Ticker cards side by side; published cards below them, full width.
    const tickers = document.createElement('div');
    tickers.className = 'channel-grid';
    const feeds = document.createElement('div');
    feeds.className = 'channel-feeds';
    this.#el.replaceChildren(tickers, feeds);
    this.#cards.clear();
    for (const ch of list) {
      const card = new Card(ch, () => this.#toggle(ch.name));
      (card.published ? feeds : tickers).append(card.el);
      this.#cards.set(ch.name, card);
    }
    // Everything is on at first: the page is a demo of every channel.
    this.#wish = new Set(this.#cards.keys());
    this.#drawToggles();
  }

  /** names lists the channels, each an event name of the stream. */
  names() {
    return [...this.#cards.keys()];
  }

  /** wish lists the channels this tab shows. */
  wish() {
    return [...this.#wish];
  }

  /** tuned lists the channels the session is tuned to, as the server said. */
  tuned() {
    return [...this.#tuned];
  }

  /** wanted is what a new session should be tuned to: every tab's wish. */
  wanted() {
    const want = new Set(this.#wish);
    for (const [name, on] of this.#pending) {
      if (on) want.add(name);
      else want.delete(name);
    }
    for (const w of this.#tabs.wishes()) for (const name of w) want.add(name);
    return [...want].filter((name) => this.#cards.has(name));
  }

  /** tick takes a channel's characters: a tab counts only those it shows. */
  tick(name, data) {
    const card = this.#cards.get(name);
    if (card && this.#wish.has(name)) card.tick(data);
  }

  /**
   * applyTuned takes the server's word on the session's channels. A channel
   * tuned out leaves every tab's wish: a tab tunes out only what no other tab
   * wants, so it was that or a client outside the tabs. A channel tuned in that
   * no tab asked for came from outside too, and every tab shows it. A baseline
   * (a new session, a tab joining) is taken as it is.
   */
  applyTuned(list, baseline = false) {
    const next = new Set(list || []);
    if (!baseline) {
      for (const name of this.#tuned) {
        if (!next.has(name) && !this.#pending.has(name)) this.#wish.delete(name);
      }
      for (const name of next) {
        if (!this.#tuned.has(name) && !this.#pending.has(name) && !this.#wantedByAnyTab(name)) this.#wish.add(name);
      }
    }
    this.#tuned = next;
    this.#drawToggles();
  }

  /** ensureTuned tunes the session in to every channel this tab wants. */
  ensureTuned() {
    if (!this.#session()) return;
    for (const name of this.#wish) {
      if (this.#cards.has(name) && !this.#tuned.has(name) && !this.#pending.has(name)) this.#tune(name, true, false);
    }
  }

  /**
   * prune tunes the session out of the channels no open tab wants any more:
   * those of a tab that closed. The leader tab does it.
   */
  async prune() {
    const session = this.#session();
    if (!session) return;
    await this.#tabs.forgetClosed();
    const want = new Set(this.wanted());
    for (const name of [...this.#tuned]) {
      if (want.has(name) || this.#pending.has(name) || session !== this.#session()) continue;
      try {
        const res = await api('POST', sessionPath(session, 'channels'), { channel: name, on: false });
        if (session === this.#session()) this.applyTuned(res.channels);
      } catch {
        // Extra ticks are dropped by the tabs anyway; the next tab to close
        // tries again.
      }
    }
  }

  /** wantedByAnyTab reports whether this tab or another wants the channel. */
  #wantedByAnyTab(name) {
    if (this.#wish.has(name)) return true;
    for (const w of this.#tabs.wishes()) if (w.has(name)) return true;
    return false;
  }

  /** shownOn reports whether this tab shows the channel as on. */
  #shownOn(name) {
    return this.#wish.has(name) && (!this.#session() || this.#tuned.has(name));
  }

  #drawToggles() {
    for (const name of this.#cards.keys()) this.#drawToggle(name);
  }

  #drawToggle(name) {
    const on = this.#shownOn(name);
    const busy = this.#pending.has(name);
    this.#cards.get(name).showToggle(on, busy ? this.#pending.get(name) : on, busy);
  }

  /** toggle is a card's toggle: the user turns the channel on or off. */
  async #toggle(name) {
    const want = !(this.#pending.has(name) ? this.#pending.get(name) : this.#shownOn(name));
    if (!this.#session()) {
      // No session right now: the wish is what the next session will ask for.
      if (want) this.#wish.add(name);
      else this.#wish.delete(name);
      this.#announce();
      this.#drawToggle(name);
      return;
    }
    await this.#tune(name, want, true);
  }

  #announce() {
    this.#tabs.announceWish(this.wish());
  }

  /**
   * tune changes this tab's wish for a channel and tunes the shared session
   * as it needs: in if the session lacks the channel, out only if no other
   * open tab wants it (otherwise this tab just stops showing it). The card
   * shows the change once the server has confirmed it, as a page alone always
   * did. A tune-in is announced to the other tabs before its POST, so that
   * they do not take the tuned event for a change from outside. With revert,
   * a failed tune-in takes the wish back.
   */
  async #tune(name, on, revert) {
    const session = this.#session();
    this.#pending.set(name, on);
    if (on && !this.#wish.has(name)) {
      this.#wish.add(name);
      this.#announce();
    }
    this.#drawToggle(name);
    try {
      const post = on ? !this.#tuned.has(name) : !(await this.#tabs.othersWant(name));
      if (post) {
        const res = await api('POST', sessionPath(session, 'channels'), { channel: name, on });
        if (session === this.#session()) this.applyTuned(res.channels);
      }
      if (!on && this.#pending.get(name) === on && this.#wish.has(name)) {
        this.#wish.delete(name);
        this.#announce();
      }
      clearError(this.#errorEl);
    } catch (err) {
      if (on && revert && this.#pending.get(name) === on) {
        this.#wish.delete(name);
        this.#announce();
      }
      showError(this.#errorEl, `${name}: ${errorText(err)}`);
    } finally {
      if (this.#pending.get(name) === on) this.#pending.delete(name);
      this.#drawToggle(name);
    }
  }
}

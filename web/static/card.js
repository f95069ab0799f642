// A channel's card: its title, an on/off toggle, and what the channel sends.
// A ticker's characters run in a box that keeps the last MAX_CHARS; a
// published channel's lines scroll in a list (published.js). The card draws
// at most once per animation frame, whatever the rate.

import { redraw } from './dom.js';
import { Feed, isPublished } from './published.js';

// MAX_CHARS bounds each ticker box, in UTF-16 code units (a pair is never
// split), so a fast channel cannot grow the page without limit.
const MAX_CHARS = 2000;

/** Card is one channel's card on the page. */
export class Card {
  #text = ''; // a ticker's characters shown
  #pendingText = ''; // a ticker's characters to show at the next frame
  #count = 0; // a ticker's characters received
  #feed = null; // a published channel's list
  #screen = null; // a ticker's box
  #counter;
  #toggle;
  #drawSoon = () => this.#draw(); // one function, so redraw draws once a frame

  /**
   * ch is the channel as GET /channels lists it; onToggle runs when the
   * user presses the toggle.
   */
  constructor(ch, onToggle) {
    this.name = ch.name;
    this.published = isPublished(ch);

    const idp = 'ch-' + ch.name;
    this.el = document.createElement('article');
    this.el.className = 'channel';
    this.el.id = idp;
    this.el.dataset.testid = 'channel';
    this.el.dataset.channel = ch.name;
    this.el.dataset.on = 'false';
    this.el.dataset.width = String(ch.width);
    this.el.dataset.kind = this.published ? 'published' : 'ticker';

    const head = document.createElement('div');
    head.className = 'channel-head';
    const h = document.createElement('h3');
    h.id = idp + '-title';
    h.textContent = ch.title || ch.name;
    const meta = document.createElement('span');
    meta.className = 'channel-meta';
    meta.textContent = this.published
      ? `${ch.name} · published`
      : `${ch.name} · ${ch.rate}/s · ${ch.width} cell${ch.width === 1 ? '' : 's'}`;
    this.#toggle = document.createElement('button');
    this.#toggle.type = 'button';
    this.#toggle.id = idp + '-toggle';
    this.#toggle.className = 'toggle';
    this.#toggle.setAttribute('aria-pressed', 'false');
    this.#toggle.setAttribute('aria-label', `${ch.title || ch.name} on`);
    this.#toggle.textContent = 'off';
    this.#toggle.addEventListener('click', onToggle);
    head.append(h, meta, this.#toggle);

    let screen;
    if (this.published) {
      // Lines of text from publishers: a list the reader can scroll back.
      this.#feed = new Feed(idp + '-lines');
      screen = this.#feed.el;
      screen.setAttribute('aria-labelledby', h.id);
    } else {
      screen = document.createElement('div');
      screen.className = 'channel-screen';
      screen.setAttribute('aria-hidden', 'true'); // a stream of characters is noise to a screen reader
      this.#screen = document.createElement('div');
      this.#screen.className = 'channel-text';
      this.#screen.id = idp + '-text';
      this.#screen.lang = 'und';
      screen.append(this.#screen);
    }

    this.#counter = document.createElement('span');
    this.#counter.className = 'channel-count';
    this.#counter.id = idp + '-count';
    this.#counter.dataset.count = '0';
    this.#counter.textContent = '0 characters';

    this.el.append(head, screen, this.#counter);
    this.el.setAttribute('aria-labelledby', h.id);
  }

  /** tick takes an event's data: characters, or a published line. */
  tick(data) {
    if (this.#feed) {
      this.#feed.add(data);
      redraw(this.#drawSoon);
      return;
    }
    // Count characters, not code units: channel two's ideographs may be pairs.
    let n = 0;
    for (const _ of data) n++;
    this.#count += n;
    this.#pendingText = keepTail(this.#pendingText + data, MAX_CHARS);
    redraw(this.#drawSoon);
  }

  /**
   * showToggle shows whether the channel is on in this tab, and what the
   * toggle asks for: different while busy, with the change on its way.
   */
  showToggle(on, want, busy) {
    this.el.dataset.on = String(on);
    this.#toggle.setAttribute('aria-pressed', String(want));
    this.#toggle.setAttribute('aria-busy', String(busy));
    this.#toggle.textContent = want ? 'on' : 'off';
  }

  #draw() {
    if (this.#feed) {
      this.#feed.draw();
      this.#counter.dataset.count = String(this.#feed.count);
      this.#counter.textContent = `${this.#feed.count} event${this.#feed.count === 1 ? '' : 's'}`;
      return;
    }
    if (this.#pendingText) {
      this.#text = keepTail(this.#text + this.#pendingText, MAX_CHARS);
      this.#pendingText = '';
      this.#screen.textContent = this.#text;
    }
    this.#counter.dataset.count = String(this.#count);
    this.#counter.textContent = `${this.#count} characters`;
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

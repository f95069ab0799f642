// Published channels: their events are text that publishers POST to the
// server (a log, a build, prices), shown as a scrolling list, one item per
// event, newest at the bottom. The text is untrusted: it reaches the page
// only through textContent, and the characters that would act rather than
// show (controls, bidi embeddings, overrides, isolates and marks) are
// replaced by U+FFFD, as the terminal client does, so a line cannot reorder
// or hide what follows it.

import { nearBottom } from './dom.js';

// MAX_LINES bounds each list, in events.
export const MAX_LINES = 500;

// Controls but tab and line feed, DEL, C1, and the bidi formatting
// characters (ALM, LRM, RLM, LRE..RLO, LRI..PDI).
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** inert returns s with every character that could act replaced by U+FFFD. */
export function inert(s) {
  return String(s).replace(UNSAFE, '\uFFFD');
}

/** isPublished reports whether a GET /channels entry is a published channel. */
export function isPublished(ch) {
  return ch.kind === 'published';
}

/**
 * Feed is the list of one published channel's card. add takes an event's
 * data at once; draw, called once per animation frame, puts what arrived on
 * the page and keeps the newest line in view unless the reader scrolled up.
 */
export class Feed {
  constructor(id) {
    this.el = document.createElement('ol');
    this.el.className = 'feed';
    this.el.id = id;
    this.el.setAttribute('role', 'log');
    this.pending = [];
    this.count = 0;
  }

  add(data) {
    this.count++;
    this.pending.push(inert(data));
    if (this.pending.length > MAX_LINES) this.pending.splice(0, this.pending.length - MAX_LINES);
  }

  draw() {
    if (this.pending.length === 0) return;
    const el = this.el;
    const atBottom = nearBottom(el);
    const frag = document.createDocumentFragment();
    for (const text of this.pending) {
      const li = document.createElement('li');
      li.className = 'feed-line';
      li.textContent = text;
      frag.append(li);
    }
    this.pending = [];
    el.append(frag);
    while (el.childElementCount > MAX_LINES) el.firstElementChild.remove();
    if (atBottom) el.scrollTop = el.scrollHeight;
  }
}

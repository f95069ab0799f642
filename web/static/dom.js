// Small helpers for every part of the page: finding an element, an error
// line, a clock time, and drawing at most once per animation frame.

/** byId returns the page's element with this id. */
export const byId = (id) => document.getElementById(id);

/** showError puts text in an error line and shows it. */
export function showError(el, text) {
  el.textContent = text;
  el.hidden = false;
}

/** clearError empties an error line and hides it. */
export function clearError(el) {
  el.textContent = '';
  el.hidden = true;
}

/** clock formats a time of day as hh:mm:ss, 24-hour. */
export function clock(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/**
 * nearBottom reports whether a scrolling list shows its end, so that new
 * lines keep it there unless the reader scrolled up.
 */
export function nearBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 8;
}

// Everything the stream changes on screen is noted here and drawn at most
// once per animation frame, so hundreds of events a second cost one layout a
// frame. dirty holds the draw functions asked for since the last frame.
const dirty = new Set();
let frameAsked = false;

/** redraw runs fn at the next animation frame, once however often asked. */
export function redraw(fn) {
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

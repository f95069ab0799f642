// Bulk events that outrun the answer naming their transfer. The stream and
// the POST travel apart, so a transfer's first chunks (even its bulk-end)
// may arrive before the POST's answer gives its id; on a shared stream they
// may as well be another tab's. While one of this tab's bulk POSTs waits for
// its answer, the events of transfers nobody here has claimed are held, by
// transfer id, up to MAX_HELD characters of base64; the answer claims its
// own and the rest are dropped when no POST waits any more. A transfer whose
// held chunks overflowed reports them missing rather than passing unverified.

const MAX_HELD = 64 << 20;

/** Held keeps the unclaimed bulk events of one tab. */
export class Held {
  #events = new Map(); // transfer id -> [[event name, data], ...]
  #size = 0; // characters of base64 held
  #posts = 0; // this tab's bulk POSTs waiting for their answer

  /** posting notes a bulk POST sent: hold events until its answer. */
  posting() {
    this.#posts++;
  }

  /** answered notes a bulk POST answered; the last drops what is held. */
  answered() {
    if (--this.#posts === 0) {
      this.#events.clear();
      this.#size = 0;
    }
  }

  /** hold keeps a bulk or bulk-end event's data, if a POST waits. */
  hold(name, d) {
    if (this.#posts === 0 || typeof d.transfer !== 'string') return;
    const size = name === 'bulk' && typeof d.data === 'string' ? d.data.length : 0;
    if (this.#size + size > MAX_HELD) return;
    let held = this.#events.get(d.transfer);
    if (!held) {
      held = [];
      this.#events.set(d.transfer, held);
    }
    held.push([name, d]);
    this.#size += size;
  }

  /** claim removes and returns the events held for a transfer, in order. */
  claim(id) {
    const held = this.#events.get(id) || [];
    this.#events.delete(id);
    for (const [name, d] of held) if (name === 'bulk') this.#size -= d.data.length;
    return held;
  }
}

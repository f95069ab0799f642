package broadcast

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Ticks are a pure function of the hub's seed: tick k of a channel ticking r
// times a second falls at k/r seconds after the Unix epoch and draws its
// character from a ChaCha8 stream keyed by (seed, channel, k). So hubs that
// share a seed and channel settings (the nodes of a cluster, see
// docs/SCALING.md) send the same characters at the same instants without
// telling each other anything, and the ticks of all channels that fall due
// together leave as one batch: one lock, one wake and one write per session.

// tickTime is when tick k of c falls.
func (c *channel) tickTime(k int64) time.Time {
	return time.Unix(0, int64(float64(k)/c.Rate*1e9))
}

// tickAfter is the first tick of c that falls after t.
func (c *channel) tickAfter(t time.Time) int64 {
	k := int64(math.Floor(float64(t.UnixNano()) / 1e9 * c.Rate))
	for !c.tickTime(k).After(t) {
		k++
	}
	return k
}

// draw is tick k's character.
func (c *channel) draw(seed *[32]byte, k int64) rune {
	s := *seed
	binary.LittleEndian.PutUint64(s[16:], binary.LittleEndian.Uint64(s[16:])^uint64(k))
	binary.LittleEndian.PutUint64(s[24:], binary.LittleEndian.Uint64(s[24:])^uint64(c.index+1)<<56)
	return c.Repertoire[rand.New(rand.NewChaCha8(s)).IntN(len(c.Repertoire))]
}

// A dueTick is one channel's event at one instant.
type dueTick struct {
	c  *channel
	ev *event
}

// clock publishes every channel's ticks as they fall due, until ctx ends.
// A clock that wakes late (a stalled process) skips the ticks it missed
// rather than sending a burst. Runs in its own goroutine.
func (h *Hub) clock(ctx context.Context) {
	chans := h.tickers
	if len(chans) == 0 {
		return // only published channels: nothing ticks
	}
	next := make([]int64, len(chans)) // per channel: the next tick number
	now := time.Now()
	for i, c := range chans {
		next[i] = c.tickAfter(now)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []dueTick
	for {
		at := chans[0].tickTime(next[0])
		for i, c := range chans[1:] {
			if t := c.tickTime(next[i+1]); t.Before(at) {
				at = t
			}
		}
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		due = due[:0]
		for i, c := range chans {
			if c.tickTime(next[i]).After(now) {
				continue
			}
			var buf [utf8.UTFMax]byte
			n := utf8.EncodeRune(buf[:], c.draw(&h.seed, next[i]))
			body, _ := protocol.AppendBody(nil, c.Name, buf[:n]) // name validated at start
			due = append(due, dueTick{c: c, ev: &event{body: body, at: now.UnixNano()}})
			next[i] = max(next[i]+1, c.tickAfter(now))
		}
		h.deliverTicks(due)
	}
}

// deliverTicks hands ticks that fell due together to every session tuned to
// any of them, each session once.
func (h *Hub) deliverTicks(due []dueTick) {
	var (
		seen   uint64 // channels whose listeners have been served
		counts [64]int64
	)
	direct := directPool.Get().(*[]*Stream)
	h.mu.RLock()
	for _, t := range due {
		for s := range h.subs[t.c.index] {
			if st := s.pushTicks(due, seen, &counts); st != nil {
				*direct = append(*direct, st)
			}
		}
		seen |= 1 << t.c.index
	}
	h.mu.RUnlock()
	h.writeTicks(direct)
	for _, t := range due {
		h.stats.ticks[t.c.index].Add(1)
		h.stats.tickDeliveries[t.c.index].Add(counts[t.c.index])
	}
}

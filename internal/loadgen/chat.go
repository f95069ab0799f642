package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// chatName is the name every chat of the load generator carries.
const chatName = "loadgen"

// chatLog matches received chat events with the moment they were posted.
// The text of chat number seq is marker+seq; the marker holds a random run
// id, so chats of another run (or another user) are never matched. Send
// times are kept in a fixed table of atomics, written by the sender just
// before its POST and read by every stream reader without a lock. For a
// cluster the table also notes which node took each POST, so a delivery can
// be told apart as local (a stream on that node) or relayed (another node).
type chatLog struct {
	marker []byte
	clock  time.Time      // zero of the offsets below (monotonic)
	sent   []atomic.Int64 // offset of seq's POST + 1; 0: not sent (yet)
	node   []atomic.Int32 // the target index seq was posted to
}

func newChatLog(runID string, clock time.Time, capacity int) *chatLog {
	return &chatLog{
		marker: []byte("lg-" + runID + "-"), clock: clock,
		sent: make([]atomic.Int64, capacity), node: make([]atomic.Int32, capacity),
	}
}

// text is the chat text of message seq.
func (c *chatLog) text(seq int) string { return string(c.marker) + strconv.Itoa(seq) }

// markSent records that seq is about to be posted to target node. The node
// is stored first: a reader that sees the time sees the node too.
func (c *chatLog) markSent(seq, node int) {
	c.node[seq].Store(int32(node))
	c.sent[seq].Store(int64(time.Since(c.clock)) + 1)
}

// unmark forgets seq, whose POST failed: it will never be delivered.
func (c *chatLog) unmark(seq int) { c.sent[seq].Store(0) }

// match finds the sequence number in a chat event's JSON data. It looks for
// the marker in the raw data instead of decoding the JSON: with 10,000
// streams every chat is read 10,000 times, and the marker has no characters
// JSON would escape.
func (c *chatLog) match(data []byte) (seq int, ok bool) {
	i := bytes.Index(data, c.marker)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(c.marker):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 || j >= len(rest) || rest[j] != '"' {
		return 0, false
	}
	n, err := atoi(rest[:j])
	if err != nil || n >= len(c.sent) {
		return 0, false
	}
	return n, true
}

// latency is the delay from seq's POST to now, and the node it was posted
// to, if seq was posted.
func (c *chatLog) latency(seq int, now time.Duration) (time.Duration, int, bool) {
	t := c.sent[seq].Load()
	if t == 0 {
		return 0, 0, false
	}
	return now - time.Duration(t-1), int(c.node[seq].Load()), true
}

// A chatter is a session that posts chats, and where it posts them.
type chatter struct {
	session string
	base    string // the node's base URL
	node    int    // its index among the targets
}

// chatResult is what the chat sender did.
type chatResult struct {
	sent, failed int64
	lastErr      string
}

// sendChats posts chats at rate a second, round robin over the chatters,
// until ctx ends or the log is full. Each POST runs in its own goroutine
// under reqCtx, so a slow answer neither delays the schedule nor is cut off
// when the window closes; sendChats waits for them all.
func sendChats(ctx, reqCtx context.Context, hc *http.Client, chatters []chatter, rate float64, log *chatLog) chatResult {
	var (
		res  chatResult
		mu   sync.Mutex
		wg   sync.WaitGroup
		seq  int
		tick = time.NewTicker(time.Duration(float64(time.Second) / rate))
	)
	defer tick.Stop()
	post := func(seq int, c chatter) {
		defer wg.Done()
		log.markSent(seq, c.node)
		err := postChat(reqCtx, hc, c.base, c.session, log.text(seq))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			log.unmark(seq)
			res.failed++
			res.lastErr = err.Error()
			return
		}
		res.sent++
	}
	for seq < len(log.sent) {
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-tick.C:
			wg.Add(1)
			go post(seq, chatters[seq%len(chatters)])
			seq++
		}
	}
	wg.Wait()
	return res
}

// chatSenders is how many sessions share the chat rate so that none of them
// exceeds one message a second, well under the server's default allowance
// of protocol.DefaultChatRate with bursts; and at least one a node, so
// that the chats are posted to every node of a cluster in turn.
func chatSenders(rate float64, nodes int) int {
	return max(1, nodes, int(math.Ceil(rate)))
}

func postChat(ctx context.Context, hc *http.Client, base, session, text string) error {
	body, _ := json.Marshal(protocol.ChatPost{Name: chatName, Text: text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sessions/"+session+"/chat", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("chat: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

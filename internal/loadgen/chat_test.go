package loadgen

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestChatLogMatch(t *testing.T) {
	c := newChatLog("abc123", time.Now(), 100)
	data := func(text string, history bool) string {
		b, _ := json.Marshal(protocol.Chat{ID: 9, Name: chatName, Text: text, At: time.Now(), History: history})
		return string(b)
	}
	tests := []struct {
		name    string
		data    string
		wantSeq int
		wantOK  bool
	}{
		{"ours", data(c.text(42), false), 42, true},
		{"ours, first", data(c.text(0), false), 0, true},
		{"another run", data("lg-ffffff-42", false), 0, false},
		{"someone else", data("hello", false), 0, false},
		{"beyond the table", data(c.text(100), false), 0, false},
		{"marker without number", data(string(c.marker), false), 0, false},
		{"marker with suffix", data(c.text(4)+"x", false), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, ok := c.match([]byte(tt.data))
			if ok != tt.wantOK || (ok && seq != tt.wantSeq) {
				t.Errorf("match(%s) = %d, %v; want %d, %v", tt.data, seq, ok, tt.wantSeq, tt.wantOK)
			}
		})
	}
}

func TestChatLogLatency(t *testing.T) {
	c := newChatLog("r", time.Now(), 4)
	if _, _, ok := c.latency(1, time.Second); ok {
		t.Error("latency of a chat never sent: ok")
	}
	c.markSent(1, 2)
	sent := time.Since(c.clock)
	time.Sleep(2 * time.Millisecond)
	now := time.Since(c.clock)
	d, node, ok := c.latency(1, now)
	if !ok || d < 2*time.Millisecond || d > now-sent+2*time.Millisecond+time.Millisecond || node != 2 {
		t.Errorf("latency = %v, node %d, %v; want about %v, node 2", d, node, ok, now-sent)
	}
	c.unmark(1)
	if _, _, ok := c.latency(1, now); ok {
		t.Error("latency of a failed chat: ok")
	}
}

func TestChatSenders(t *testing.T) {
	tests := []struct {
		rate        float64
		nodes, want int
	}{
		{0.2, 1, 1}, {1, 1, 1}, {1.5, 1, 2}, {10, 1, 10},
		{1, 3, 3}, {0.2, 2, 2}, {10, 3, 10}, // at least one sender a node
	}
	for _, tt := range tests {
		if got := chatSenders(tt.rate, tt.nodes); got != tt.want {
			t.Errorf("chatSenders(%v, %d nodes) = %d, want %d", tt.rate, tt.nodes, got, tt.want)
		}
	}
}

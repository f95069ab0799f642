package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func testChat(w, h int) chat {
	c := newChat(DefaultStyles(), defaultKeys(), "ann", time.UTC)
	c.SetSize(w, h)
	return c
}

func msgAt(id int64, name, text string, at time.Time) protocol.Chat {
	return protocol.Chat{ID: id, Name: name, Text: text, At: at}
}

func TestChatDedup(t *testing.T) {
	c := testChat(60, 10)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.Add(msgAt(1, "bob", "one", at), msgAt(2, "bob", "two", at))
	// A replay of the same history adds nothing.
	h1, h2 := msgAt(1, "bob", "one", at), msgAt(2, "bob", "two", at)
	h1.History, h2.History = true, true
	c.Add(h1, h2)
	// A restarted server numbers from 1 again: a new message, not a repeat.
	c.Add(msgAt(1, "eve", "after restart", at.Add(time.Minute)))
	if len(c.lines) != 3 {
		t.Fatalf("%d lines, want 3", len(c.lines))
	}
}

func TestChatBounded(t *testing.T) {
	c := testChat(60, 10)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range maxChatLines + 100 {
		c.Add(msgAt(int64(i+1), "bob", fmt.Sprint(i), at))
	}
	if len(c.lines) != maxChatLines || len(c.seen) != maxChatLines {
		t.Fatalf("%d lines, %d seen; want %d", len(c.lines), len(c.seen), maxChatLines)
	}
	if c.lines[len(c.lines)-1].msg.Text != fmt.Sprint(maxChatLines+99) {
		t.Fatal("newest line lost")
	}
}

func TestChatFollowsUnlessScrolledBack(t *testing.T) {
	c := testChat(40, 8) // 5 lines of conversation
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 20 {
		c.Add(msgAt(int64(i+1), "bob", fmt.Sprintf("line %d", i), at))
	}
	if v := c.View(); !strings.Contains(v, "line 19") {
		t.Fatalf("newest line not shown:\n%s", v)
	}
	c.Scroll(-10)
	c.Add(msgAt(100, "bob", "line new", at))
	if v := c.View(); strings.Contains(v, "line new") || !strings.Contains(v, "line 9") {
		t.Fatalf("scrolled-back view jumped:\n%s", v)
	}
	c.Scroll(1000)
	c.Add(msgAt(101, "bob", "line newer", at))
	if v := c.View(); !strings.Contains(v, "line newer") {
		t.Fatalf("view does not follow at the bottom:\n%s", v)
	}
}

func TestChatWrapsWideText(t *testing.T) {
	c := testChat(20, 10)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.Add(msgAt(1, "李", strings.Repeat("漢字", 20), at))
	v := c.View()
	for i, l := range strings.Split(v, "\n") {
		if w := lipgloss.Width(l); w != 20 {
			t.Fatalf("line %d is %d cells, want 20:\n%s", i, w, v)
		}
	}
}

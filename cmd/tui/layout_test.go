package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fixedModel is a root model fed fixed messages through Update, with no
// server: its View depends on nothing but its input, so it can be golden.
func fixedModel(t *testing.T, w, h int) *model {
	t.Helper()
	cl, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := newModel(ctx, &tasks{}, cl, config{server: cl.BaseURL(), name: "ann", dir: t.TempDir(), loc: time.UTC})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	// What a dial would have brought: the channels, and a stream to read.
	m.setChannels([]protocol.Channel{
		{Name: "one", Title: "Letters", Rate: 5, Width: 1},
		{Name: "two", Title: "Ideographs", Rate: 3, Width: 2},
		{Name: "three", Title: "Arrows & symbols", Rate: 2, Width: 1},
		{Name: "log", Title: "Build log", Kind: protocol.KindPublished},
	})
	m.streamGen = 1
	m.str = &stream{gen: 1, out: make(chan batchMsg), stop: func() {}}
	m.layout()

	at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	b := newBatch(1)
	b.pub = map[string]bool{"log": true}
	b.add(client.Event{Kind: client.State, State: client.Connected,
		Session: &protocol.SessionEvent{Session: "Zq3kP0aaBBccDDeeFF", Channels: []string{"one", "two", "log"}}})
	for _, c := range []struct{ ch, text string }{
		{"one", strings.Repeat("AbΓδЖжQwΣλ", 9)},
		{"two", strings.Repeat("漢字仮名亜", 11)},
		{"three", "←↑→↓∀∃∈"},
	} {
		b.add(client.Event{Kind: client.Tick, Channel: c.ch, Text: c.text})
	}
	for _, line := range []string{
		"go vet ./... ok",
		"go test ./cmd/tui: wide 漢字 characters and long lines wrap by cells, never past the border",
		"step 3\nof a multi-line event",
		"\x1b[31mred\x1b[0m and \u202Ereversed\u202C stay inert",
	} {
		b.add(client.Event{Kind: client.Tick, Channel: "log", Text: line})
	}
	b.add(client.Event{Kind: client.Tuned, Tuned: &protocol.Tuned{Channels: []string{"one", "two", "log"}}})
	for i, c := range []protocol.Chat{
		{ID: 1, Name: "bob", Text: "from the history", History: true},
		{ID: 2, Name: "ann", Text: "hello everyone"},
		{ID: 3, Name: "李", Text: "你好，世界！ wide characters wrap by cells, not by runes, so this line wraps where the pane ends"},
		{ID: 4, Name: "eve", Text: "\x1b[2Jinert \u202Etext"},
	} {
		c.At = at.Add(time.Duration(i) * time.Minute)
		b.add(client.Event{Kind: client.Chat, Chat: &c})
	}
	m.Update(b)
	return m
}

func TestLayoutGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {200, 60}} {
		w, h := size[0], size[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			m := fixedModel(t, w, h)
			view := m.View()
			checkScreen(t, view, w, h)
			golden.RequireEqual(t, []byte(view))
		})
	}
}

// TestLayoutFits checks that the screen is exactly filled, never overflowed,
// at sizes from roomy to absurd, with and without full help and focus.
func TestLayoutFits(t *testing.T) {
	sizes := [][2]int{{80, 24}, {200, 60}, {100, 30}, {120, 40}, {81, 25}, {60, 18}, {40, 12}, {30, 10}, {20, 6}, {12, 4}, {5, 2}, {1, 1}}
	for _, size := range sizes {
		w, h := size[0], size[1]
		m := fixedModel(t, w, h)
		for _, step := range []string{"", "?", "c", "esc", "b"} {
			if step != "" {
				m.Update(keyMsg(step))
			}
			view := m.View()
			lines := strings.Split(view, "\n")
			if len(lines) > h {
				t.Fatalf("%dx%d after %q: %d lines", w, h, step, len(lines))
			}
			if w >= 40 && h >= 12 && len(lines) != h {
				t.Fatalf("%dx%d after %q: %d lines, want %d:\n%s", w, h, step, len(lines), h, view)
			}
			for i, l := range lines {
				if lw := lipgloss.Width(l); lw > w {
					t.Fatalf("%dx%d after %q: line %d is %d cells: %q", w, h, step, i, lw, l)
				}
			}
		}
	}
}

func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// TestLayoutFitsUnconnected checks the screen before any server answered.
func TestLayoutFitsUnconnected(t *testing.T) {
	cl, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range [][2]int{{80, 24}, {200, 60}, {3, 30}, {1, 1}, {30, 5}} {
		w, h := size[0], size[1]
		m := newModel(context.Background(), &tasks{}, cl, config{server: cl.BaseURL(), name: "ann", dir: t.TempDir()})
		m.Update(tea.WindowSizeMsg{Width: w, Height: h})
		m.status.Dialing(3, errors.New("connection refused"), 2*time.Second)
		view := m.View()
		lines := strings.Split(view, "\n")
		if len(lines) > h || (w >= 40 && len(lines) != h) {
			t.Fatalf("%dx%d: %d lines:\n%s", w, h, len(lines), view)
		}
		for i, l := range lines {
			if lipgloss.Width(l) > w {
				t.Fatalf("%dx%d: line %d is %d cells: %q", w, h, i, lipgloss.Width(l), l)
			}
		}
		if w >= 80 && !strings.Contains(view, "cannot reach http://127.0.0.1:8080: connection refused; retrying in 2s") {
			t.Fatalf("%dx%d: no explanation on screen:\n%s", w, h, view)
		}
	}
}

// TestLayoutManyChannels lays out from one to a dozen panes, tickers and
// published, at sizes down to 40x12: every pane is drawn, in rows, and the
// screen is exactly filled.
func TestLayoutManyChannels(t *testing.T) {
	sizes := [][2]int{{80, 24}, {200, 60}, {100, 30}, {120, 40}, {60, 18}, {40, 12}}
	for tickers := 0; tickers <= 8; tickers++ {
		for published := 0; published <= 4; published++ {
			if tickers+published == 0 {
				continue
			}
			var chs []protocol.Channel
			pub := map[string]bool{}
			for i := range tickers {
				chs = append(chs, protocol.Channel{Name: fmt.Sprintf("t%d", i), Title: "Ticker", Kind: protocol.KindTicker, Rate: 1, Width: 1})
			}
			for i := range published {
				name := fmt.Sprintf("p%d", i)
				pub[name] = true
				chs = append(chs, protocol.Channel{Name: name, Title: "Published", Kind: protocol.KindPublished})
			}
			for _, size := range sizes {
				w, h := size[0], size[1]
				m := fixedModel(t, w, h)
				m.setChannels(chs)
				m.layout()
				b := newBatch(1)
				b.pub = pub
				for _, c := range chs {
					b.add(client.Event{Kind: client.Tick, Channel: c.Name, Text: strings.Repeat("漢字 and text ", 20)})
				}
				m.Update(b)
				view := m.View()
				checkScreen(t, view, w, h)
				if got, want := strings.Count(view, "╭"), len(chs)+1; got != want {
					t.Fatalf("%d tickers, %d published at %dx%d: %d boxes, want %d:\n%s", tickers, published, w, h, got, want, view)
				}
				for _, row := range m.grid {
					for _, i := range row {
						if p := m.panes[i]; p.height < 3 || p.width < 3 {
							t.Fatalf("%d tickers, %d published at %dx%d: pane %d is %dx%d", tickers, published, w, h, i, p.width, p.height)
						}
					}
				}
			}
		}
	}
}

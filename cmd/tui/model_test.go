package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fastChannels are three channels ticking rate times a second, each with one
// character of its own, so a test can tell where every character came from.
func fastChannels(rate float64) broadcast.Option {
	return broadcast.WithChannels(
		broadcast.ChannelConfig{Name: "one", Title: "Letters", Rate: rate, Repertoire: []rune("Ж")},
		broadcast.ChannelConfig{Name: "two", Title: "Ideographs", Rate: rate, Repertoire: []rune("漢")},
		broadcast.ChannelConfig{Name: "three", Title: "Arrows", Rate: rate, Repertoire: []rune("∀")},
	)
}

func arrived(i int) func(*model) int64 { return func(m *model) int64 { return m.panes[i].arrived } }

// serverChannels is the tuned set the server holds for the TUI's session.
func serverChannels(t *testing.T, srv *testserver.Server, u *tui) []string {
	t.Helper()
	id := probe(u, func(m *model) string { return m.sess.ID() })
	s, ok := srv.Hub.Session(id)
	if !ok {
		t.Fatalf("server does not know session %s", protocol.ShortID(id))
	}
	ch := s.Channels()
	slices.Sort(ch)
	return ch
}

// waitMore waits until pane i has received n more characters than now.
func (u *tui) waitMore(i int, n int64) {
	u.t.Helper()
	base := probe(u, arrived(i))
	u.eventually("more characters on pane", func(m *model) bool { return m.panes[i].arrived >= base+n })
}

func TestTuneKeys(t *testing.T) {
	srv := testserver.Start(t, fastChannels(50))
	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected", connected)
	if got := probe(u, func(m *model) int { return len(m.panes) }); got != 3 {
		t.Fatalf("%d panes, want 3", got)
	}
	// A new client starts with every channel on.
	u.eventually("every channel on from the start", func(m *model) bool {
		return m.panes[0].server && m.panes[1].server && m.panes[2].server && m.panes[2].arrived > 0
	})
	if got := serverChannels(t, srv, u); !slices.Equal(got, []string{"one", "three", "two"}) {
		t.Fatalf("server has %v tuned at the start", got)
	}
	u.press("n")
	u.eventually("all off", func(m *model) bool {
		return !m.tuneBusy && !m.panes[0].server && !m.panes[1].server && !m.panes[2].server
	})
	before := [3]int64{probe(u, arrived(0)), probe(u, arrived(1)), probe(u, arrived(2))}

	u.press("1")
	// Optimistic: the pane says on before the server has answered.
	if !probe(u, func(m *model) bool { return m.panes[0].on }) {
		t.Fatal("pane one not shown on right after the key")
	}
	u.eventually("channel one ticks and the server agrees", func(m *model) bool {
		return m.panes[0].server && m.panes[0].arrived >= before[0]+10
	})
	// Ticks sent before "n" took effect may have come after it was
	// answered; they all came before channel one's new ones.
	two, three := probe(u, arrived(1)), probe(u, arrived(2))
	u.waitMore(0, 20)
	if a, b := probe(u, arrived(1)), probe(u, arrived(2)); a != two || b != three {
		t.Fatalf("untuned channels got %d and %d characters", a-two, b-three)
	}
	if got := serverChannels(t, srv, u); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("server has %v tuned", got)
	}
	if view := probe(u, (*model).View); !strings.Contains(view, "ЖЖЖ") {
		t.Fatalf("screen should show channel one's characters:\n%s", view)
	}

	u.press("2")
	u.eventually("channel two ticks", func(m *model) bool { return m.panes[1].arrived >= two+10 })
	u.press("1")
	u.eventually("channel one off", func(m *model) bool { return !m.panes[0].on && !m.panes[0].server })
	// Ticks sent before the tune took effect may still be on their way;
	// after that, channel one must stay silent while two keeps ticking.
	u.waitMore(1, 20)
	quiet := probe(u, arrived(0))
	u.waitMore(1, 20)
	if got := probe(u, arrived(0)); got != quiet {
		t.Fatalf("channel one got %d characters after it was tuned out", got-quiet)
	}

	u.press("a")
	u.eventually("all on", func(m *model) bool {
		return m.panes[0].server && m.panes[1].server && m.panes[2].server && m.panes[2].arrived >= three+10
	})
	if got := serverChannels(t, srv, u); !slices.Equal(got, []string{"one", "three", "two"}) {
		t.Fatalf("server has %v tuned after a", got)
	}
	u.press("n")
	u.eventually("all off", func(m *model) bool {
		return !m.panes[0].server && !m.panes[1].server && !m.panes[2].server
	})
	if got := serverChannels(t, srv, u); len(got) != 0 {
		t.Fatalf("server has %v tuned after n", got)
	}

	// Keys faster than the POSTs: the last wish wins, on screen and server.
	u.press("3", "3", "3", "2", "2")
	u.eventually("rapid keys settle", func(m *model) bool {
		return !m.tuneBusy && m.panes[2].server && m.panes[2].on && !m.panes[1].server && !m.panes[1].on
	})
	if got := serverChannels(t, srv, u); !slices.Equal(got, []string{"three"}) {
		t.Fatalf("server has %v tuned after 3 3 3 2 2", got)
	}
	// Keys that arrive in one read ("13") are two commands.
	u.tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("13")})
	u.eventually("13 tunes one in and three out", func(m *model) bool {
		return !m.tuneBusy && m.panes[0].server && !m.panes[2].server
	})
}

// listen runs a pkg/client session in the background and returns its events.
func listen(t *testing.T, url string) (*client.Session, <-chan client.Event) {
	t.Helper()
	cl, err := client.New(url, client.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sess, err := cl.Open(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	events := make(chan client.Event, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sess.Run(ctx, events)
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); cl.CloseIdleConnections() })
	return sess, events
}

// waitChat waits for a chat event matching name and text.
func waitChat(t *testing.T, events <-chan client.Event, name, text string) protocol.Chat {
	t.Helper()
	deadline := time.After(ssetest.Wait)
	for {
		select {
		case ev := <-events:
			if ev.Kind == client.Chat && ev.Chat.Name == name && ev.Chat.Text == text {
				return *ev.Chat
			}
		case <-deadline:
			t.Fatalf("no chat %q from %q within %v", text, name, ssetest.Wait)
		}
	}
}

func hasChat(name, text string) func(*model) bool {
	return func(m *model) bool {
		return slices.ContainsFunc(m.chat.lines, func(l chatLine) bool { return l.msg.Name == name && l.msg.Text == text })
	}
}

func TestChatRoundTrip(t *testing.T) {
	srv := testserver.Start(t)
	other, events := listen(t, srv.URL)
	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected", connected)

	// Typed in the TUI, received by another client. A "q" in the input is
	// text, not quit.
	u.press("c")
	u.typeText("hello q from the tui")
	u.press("enter")
	waitChat(t, events, "tui", "hello q from the tui")
	u.eventually("own line shown", hasChat("tui", "hello q from the tui"))
	if !probe(u, func(m *model) bool { return m.chat.Focused() && m.chat.input.Value() == "" }) {
		t.Fatal("after enter the input should be empty and still focused")
	}
	u.press("esc")
	if probe(u, func(m *model) bool { return m.chat.Focused() }) {
		t.Fatal("esc should leave the input")
	}

	// Sent by another client, shown in the TUI with name and time.
	if _, err := other.Chat(context.Background(), "bob", "hi from bob"); err != nil {
		t.Fatal(err)
	}
	u.eventually("bob's line shown", hasChat("bob", "hi from bob"))
	view := probe(u, (*model).View)
	if !strings.Contains(view, "bob: hi from bob") || !strings.Contains(view, "tui: hello q from the tui") {
		t.Fatalf("chat lines missing:\n%s", view)
	}
	if !strings.Contains(view, time.Now().UTC().Format("15:")) {
		t.Fatalf("no time on the chat lines:\n%s", view)
	}

	// A client joining later sees the history.
	late := startTUI(t, srv.URL, 80, 24)
	late.eventually("history replayed", func(m *model) bool {
		return hasChat("bob", "hi from bob")(m) && hasChat("tui", "hello q from the tui")(m) &&
			m.chat.lines[0].msg.History
	})
}

func TestChatSanitised(t *testing.T) {
	srv := testserver.Start(t)
	other, _ := listen(t, srv.URL)
	u := startTUI(t, srv.URL, 100, 24)
	u.eventually("connected", connected)

	evil := "clear\x1b[2J clip\x1b]52;c;aGk=\x07 \u202Eevil\u202C \u2066iso\u2069 \u200Fmark"
	if _, err := other.Chat(context.Background(), "mal\x1b[31mlory", evil); err != nil {
		t.Fatal(err)
	}
	u.eventually("message shown", func(m *model) bool {
		return slices.ContainsFunc(m.chat.lines, func(l chatLine) bool { return strings.Contains(l.msg.Text, "clear") })
	})
	view := probe(u, (*model).View)
	if strings.ContainsRune(view, 0x1b) {
		t.Fatalf("an ESC reached the view:\n%q", view)
	}
	for _, r := range view {
		if isBidiControl(r) || (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) {
			t.Fatalf("%U reached the view:\n%q", r, view)
		}
	}
	for _, want := range []string{"[2J", "]52;c;aGk=", "evil", "iso", "mal\uFFFD[31mlory"} {
		if !strings.Contains(view, want) {
			t.Fatalf("want %q shown as text:\n%s", want, view)
		}
	}
	// What went to the terminal holds no OSC 52 and no bidi mark either.
	time.Sleep(100 * time.Millisecond) // let the renderer flush a frame
	out, err := io.ReadAll(u.tm.Output())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("\x1b]52")) || bytes.Contains(out, []byte("\x1b[31mlory")) {
		t.Fatal("an escape sequence from the message reached the terminal")
	}
	for _, r := range "\u202E\u202C\u2066\u2069\u200F" {
		if bytes.ContainsRune(out, r) {
			t.Fatalf("%U reached the terminal", r)
		}
	}
}

func TestBulk(t *testing.T) {
	files := t.TempDir()
	src := make([]byte, 150_000)
	if _, err := rand.Read(src); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "random.bin"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, broadcast.WithFilesDir(files), broadcast.WithMaxBulk(4<<20))
	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected with the file list", func(m *model) bool { return connected(m) && len(m.bulk.files) == 1 })

	done := func(m *model) bool { return m.bulk.phase == bulkIdle && m.bulk.last.t != nil }
	diag := func() string { // what the client and the server saw, if a transfer stalls
		return probe(u, func(m *model) string {
			got, total := int64(-1), int64(-1)
			if m.bulk.t != nil {
				got, total = m.bulk.t.Progress()
			}
			return fmt.Sprintf("transfer %d/%d bytes; client %+v; last event id %d\nserver %+v",
				got, total, m.sess.Stats(), m.sess.LastEventID(), srv.Hub.Snapshot())
		})
	}
	reset := func(m *model) bool { m.bulk.last = bulkSavedMsg{}; return true }

	// By size.
	u.press("b")
	u.typeText("300KiB")
	u.press("enter")
	u.eventuallyOr("transfer verified", done, diag)
	last := probe(u, func(m *model) bulkSavedMsg { return m.bulk.last })
	view := probe(u, (*model).View)
	if !strings.Contains(view, "sha256 verified") {
		t.Fatalf("no verdict on screen:\n%s", view)
	}
	data, err := os.ReadFile(last.path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if len(data) != 300<<10 || hex.EncodeToString(sum[:]) != last.t.Accepted().SHA256 {
		t.Fatalf("saved %d bytes with sha256 %x; want %d bytes, %s", len(data), sum, 300<<10, last.t.Accepted().SHA256)
	}
	if filepath.Dir(last.path) != probe(u, func(m *model) string { return m.cfg.dir }) {
		t.Fatalf("saved to %s, not into -dir", last.path)
	}
	probe(u, reset)

	// By file name, completed with tab.
	u.press("b")
	u.typeText("ran")
	u.press("tab", "enter")
	u.eventuallyOr("file transfer verified", done, diag)
	last = probe(u, func(m *model) bulkSavedMsg { return m.bulk.last })
	if !probe(u, func(m *model) bool { return m.bulk.ok }) {
		t.Fatalf("file transfer failed: %s", probe(u, func(m *model) string { return m.bulk.result }))
	}
	data, err = os.ReadFile(last.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, src) {
		t.Fatalf("saved file differs from the server's (%d vs %d bytes)", len(data), len(src))
	}

	// A size the prompt cannot read keeps the prompt open with a hint.
	u.press("b")
	u.typeText("lots")
	u.press("enter")
	if got := probe(u, func(m *model) string { return m.bulk.View() }); !strings.Contains(got, "not a size") {
		t.Fatalf("bulk line %q", got)
	}
	u.press("esc")

	// A transfer the server refuses is a clear failure.
	u.press("b")
	u.typeText("8MiB")
	u.press("enter")
	u.eventually("refusal shown", func(m *model) bool { return m.bulk.phase == bulkIdle && m.bulk.result != "" && !m.bulk.ok })
	if got := probe(u, func(m *model) string { return m.bulk.View() }); !strings.Contains(got, "failed") || !strings.Contains(got, "413") {
		t.Fatalf("bulk line %q", got)
	}
}

func paneText(i int) func(*model) string {
	return func(m *model) string { return strings.Join(m.panes[i].lines, "") + string(m.panes[i].last) }
}

func TestReconnect(t *testing.T) {
	srv := testserver.Start(t, fastChannels(20))
	// The proxy can go down (listener and every connection closed) and come
	// back on the same address: a network outage.
	px := soak.StartProxy(t, []string{srv.Addr})
	u := startTUI(t, px.URL(), 80, 24)
	u.eventually("connected", connected)
	u.press("n", "1")
	u.eventually("channel one ticks", func(m *model) bool {
		return !m.tuneBusy && m.panes[0].server && !m.panes[1].server && m.panes[0].arrived >= 20
	})
	u.typeText("c")
	u.typeText("before the cut")
	u.press("enter", "esc")
	u.eventually("chat shown", hasChat("tui", "before the cut"))
	id := probe(u, func(m *model) string { return m.sess.ID() })

	px.Down()
	u.eventually("reconnecting shown", func(m *model) bool { return m.status.state == "reconnecting" })
	before := probe(u, paneText(0))
	if view := probe(u, (*model).View); !strings.Contains(view, "reconnecting") || !strings.Contains(view, "before the cut") {
		t.Fatalf("status or chat missing while reconnecting:\n%s", view)
	}
	if err := px.Up(); err != nil {
		t.Fatalf("proxy: %v", err)
	}
	u.eventually("resumed", func(m *model) bool { return m.status.state == "resumed" })
	u.waitMore(0, 20)

	after := probe(u, paneText(0))
	if !strings.HasPrefix(after, before) || len(after) <= len(before) {
		t.Fatalf("pane lost its content across the reconnect: %d → %d bytes", len(before), len(after))
	}
	if got := probe(u, func(m *model) string { return m.sess.ID() }); got != id {
		t.Fatalf("session changed from %s to %s; want a resume", protocol.ShortID(id), protocol.ShortID(got))
	}
	if !probe(u, func(m *model) bool { return m.panes[0].on && m.panes[0].server && !m.panes[1].on }) {
		t.Fatal("tuning did not survive the reconnect")
	}
	if n := probe(u, func(m *model) int { return len(m.chat.lines) }); n != 1 {
		t.Fatalf("chat has %d lines after the resume, want 1 (no duplicates)", n)
	}
}

func TestServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	u := startTUI(t, "http://"+addr, 80, 24)
	u.eventually("unreachable shown", func(m *model) bool { return m.status.state == "server unreachable" && m.dialAttempt >= 2 })
	view := probe(u, (*model).View)
	for _, want := range []string{"connection refused", "retrying", "server unreachable (attempt"} {
		if !strings.Contains(view, want) {
			t.Fatalf("screen lacks %q:\n%s", want, view)
		}
	}
	checkScreen(t, view, 80, 24)

	// The server comes up on that address: the client gets there by itself.
	testserver.StartAt(t, addr, testserver.Config{}, fastChannels(20))
	u.eventually("connected once the server is up", connected)
}

func TestResize(t *testing.T) {
	srv := testserver.Start(t, fastChannels(40))
	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected", connected)
	u.press("a")
	u.eventually("all channels ticking", func(m *model) bool { return m.panes[1].arrived >= 30 && m.panes[2].arrived >= 30 })
	for _, size := range [][2]int{{200, 60}, {80, 24}, {100, 30}, {60, 20}, {200, 60}, {80, 24}} {
		u.tm.Send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		view := probe(u, (*model).View)
		checkScreen(t, view, size[0], size[1])
		if !strings.Contains(view, "漢漢") {
			t.Fatalf("%dx%d: pane two lost its characters:\n%s", size[0], size[1], view)
		}
	}
	u.press("?")
	view := probe(u, (*model).View)
	checkScreen(t, view, 80, 24)
	if !strings.Contains(view, "all off") {
		t.Fatalf("full help not shown:\n%s", view)
	}
	u.press("?")
	if view := probe(u, (*model).View); strings.Contains(view, "all off") {
		t.Fatalf("full help still shown:\n%s", view)
	}
}

// checkScreen asserts a view fills w×h exactly: h lines, none wider than w,
// the last line aside from help padding.
func checkScreen(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Fatalf("%dx%d: view has %d lines:\n%s", w, h, len(lines), view)
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Fatalf("%dx%d: line %d is %d cells wide: %q", w, h, i, lw, l)
		}
	}
}

func TestQuitKeys(t *testing.T) {
	srv := testserver.Start(t)
	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected", connected)
	u.press("c", "q")
	if got := probe(u, func(m *model) string { return m.chat.input.Value() }); got != "q" {
		t.Fatalf("q in the chat input typed %q", got)
	}
	u.press("esc", "q")
	u.tm.WaitFinished(t, teatestTimeout())
}

// TestServerRestart restarts the server under the client: the old session
// is gone, so the client opens a new one, says so, and keeps the panes, the
// chat and the tuning.
func TestServerRestart(t *testing.T) {
	first := testserver.Start(t, fastChannels(20))
	u := startTUI(t, first.URL, 80, 24)
	u.eventually("connected", connected)
	u.press("n", "2")
	u.eventually("channel two ticks", func(m *model) bool { return m.panes[1].server && m.panes[1].arrived >= 10 })
	before := probe(u, paneText(1))
	oldID := probe(u, func(m *model) string { return m.sess.ID() })

	first.Close()
	second := testserver.StartAt(t, first.Addr, testserver.Config{}, fastChannels(20))
	u.eventually("new session, ticking again", func(m *model) bool {
		return m.sess.ID() != oldID && m.panes[1].server && m.panes[1].arrived >= int64(len([]rune(before)))+10
	})
	view := probe(u, (*model).View)
	if !strings.Contains(view, "new session") {
		t.Fatalf("status does not say new session:\n%s", view)
	}
	if after := probe(u, paneText(1)); !strings.HasPrefix(after, before) {
		t.Fatal("pane two lost its content across the restart")
	}
	if got := serverChannels(t, second, u); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("new session has %v tuned, want [two]", got)
	}
}

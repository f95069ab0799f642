package main

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"
	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/client"
)

func TestMain(m *testing.M) {
	// Goldens and string checks must not depend on the terminal running
	// the tests: no colour, no escape sequences in View.
	lipgloss.SetColorProfile(termenv.Ascii)
	goleak.VerifyTestMain(m,
		// teatest waits for SIGINT in a goroutine it never stops.
		goleak.IgnoreTopFunction("github.com/charmbracelet/x/exp/teatest.NewTestModel.func2"),
		goleak.IgnoreTopFunction("os/signal.signal_recv"),
		goleak.IgnoreTopFunction("os/signal.loop"),
	)
	os.Exit(0)
}

// quiet is the logger of the clients in tests.
var quiet = slog.New(slog.DiscardHandler)

// harness wraps the root model so a test can look at it from inside the
// program's goroutine (reading it from the test goroutine would race).
type harness struct{ *model }

// probeMsg runs fn on the model inside Update.
type probeMsg struct {
	fn   func(*model)
	done chan struct{}
}

func (h harness) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if p, ok := msg.(probeMsg); ok {
		p.fn(h.model)
		close(p.done)
		return h, nil
	}
	_, cmd := h.model.Update(msg)
	return h, cmd
}

// tui is a running client under test.
type tui struct {
	t  *testing.T
	tm *teatest.TestModel
	m  *model
}

// startTUI runs the root model against the server at url in a virtual
// terminal of w×h cells. Everything it started is stopped in t.Cleanup,
// before the server (registered earlier) closes.
func startTUI(t *testing.T, url string, w, h int) *tui {
	t.Helper()
	cl, err := client.New(url, client.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ts tasks
	m := newModel(ctx, &ts, cl, config{server: url, name: "tui", dir: t.TempDir(), loc: time.UTC})
	tm := teatest.NewTestModel(t, harness{m}, teatest.WithInitialTermSize(w, h))
	t.Cleanup(func() {
		_ = tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
		cancel()
		ts.Close()
		m.close()
		cl.CloseIdleConnections()
	})
	return &tui{t: t, tm: tm, m: m}
}

// probe runs fn on the model inside the program and returns its result.
func probe[T any](u *tui, fn func(*model) T) T {
	u.t.Helper()
	var out T
	done := make(chan struct{})
	u.tm.Send(probeMsg{fn: func(m *model) { out = fn(m) }, done: done})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		u.t.Fatal("the program did not answer a probe within 10s")
	}
	return out
}

// eventually waits (up to ssetest.Wait) until cond holds on the model.
func (u *tui) eventually(what string, cond func(*model) bool) {
	u.t.Helper()
	u.eventuallyOr(what, cond, nil)
}

// eventuallyOr is eventually that adds diag() to the failure report.
func (u *tui) eventuallyOr(what string, cond func(*model) bool, diag func() string) {
	u.t.Helper()
	ssetest.Eventually(u.t, what, func() error {
		if probe(u, cond) {
			return nil
		}
		return notYet{u, diag}
	})
}

// notYet is why a wait on the model has not ended yet. It shows the screen
// (and diag) only when printed, so a poll stays one probe.
type notYet struct {
	u    *tui
	diag func() string
}

func (e notYet) Error() string {
	s := "screen:\n" + probe(e.u, (*model).View)
	if e.diag != nil {
		s += "\n" + e.diag()
	}
	return s
}

// press sends keys as the terminal would: one message per key.
func (u *tui) press(keys ...string) {
	for _, k := range keys {
		switch k {
		case "enter":
			u.tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			u.tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
		case "tab":
			u.tm.Send(tea.KeyMsg{Type: tea.KeyTab})
		default:
			u.tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)})
		}
	}
}

// typeText types s one key at a time.
func (u *tui) typeText(s string) {
	for _, r := range s {
		u.tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// connected reports whether the stream is up with the panes built.
func connected(m *model) bool {
	return len(m.panes) > 0 && (m.status.state == "connected" || m.status.state == "resumed")
}

func teatestTimeout() teatest.FinalOpt { return teatest.WithFinalTimeout(10 * time.Second) }

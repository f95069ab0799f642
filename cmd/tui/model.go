package main

import (
	"context"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/xhrsse/xhrsse/pkg/client"
)

// config is what the user chose on the command line.
type config struct {
	server string         // base URL, as shown in the status line
	name   string         // chat name
	dir    string         // where bulk downloads are saved
	loc    *time.Location // chat times are shown in it; nil: local time
}

// Retry delays for reaching the server before any stream exists.
const (
	dialFirstRetry = 500 * time.Millisecond
	dialMaxRetry   = 10 * time.Second
	dialTimeout    = 10 * time.Second
)

// model is the root model. It owns one model per component (a pane per
// channel, the chat pane, the bulk line, the status line), routes keys to
// the one that has focus and server events to the ones they concern, and
// turns their requests into Cmds that do the I/O. Update and View do none.
type model struct {
	ctx   context.Context // ends every Cmd and goroutine of the model
	tasks *tasks          // the stream goroutines
	cfg   config
	cl    *client.Client
	st    Styles
	keys  keyMap
	help  help.Model

	dialGen     int
	dialAttempt int
	sess        *client.Session
	str         *stream
	streamGen   int

	panes  []pane
	chat   chat
	bulk   bulk
	status status

	// Tuning: panes show what the user asked for at once; one POST is in
	// flight at a time, and if the wish changed meanwhile another follows.
	tuneBusy    bool
	tunePending bool

	width, height int
	panesH        int     // height of the rows of panes
	grid          [][]int // the rows of panes, by index into panes
	ready         bool    // a WindowSizeMsg has arrived

	// Render accounting, for -log: View calls since start.
	views int64
	start time.Time
}

// newModel returns the root model. ctx bounds all its I/O; ts tracks the
// goroutines it starts, so the caller can wait for them after cancelling.
func newModel(ctx context.Context, ts *tasks, cl *client.Client, cfg config) *model {
	st := DefaultStyles()
	keys := defaultKeys()
	h := help.New()
	h.Styles = st.help()
	return &model{
		ctx:    ctx,
		tasks:  ts,
		cfg:    cfg,
		cl:     cl,
		st:     st,
		keys:   keys,
		help:   h,
		chat:   newChat(st, keys, cfg.name, cfg.loc),
		bulk:   newBulk(st, keys),
		status: newStatus(st, cfg.server),
		start:  time.Now(),
	}
}

// Init starts the first dial and the once-a-second clock.
func (m *model) Init() tea.Cmd {
	return tea.Batch(m.dial(), m.everySecond())
}

// after is tea.Tick that also ends with the model's context, so no timer
// goroutine outlives the program.
func (m *model) after(d time.Duration, fn func(time.Time) tea.Msg) tea.Cmd {
	ctx := m.ctx
	return func() tea.Msg {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case now := <-t.C:
			return fn(now)
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *model) everySecond() tea.Cmd {
	return m.after(time.Second, func(t time.Time) tea.Msg { return secondMsg(t) })
}

// Update handles one message.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height, m.ready = msg.Width, msg.Height, true
		m.layout()
		return m, nil
	case tea.KeyMsg:
		cmd := m.key(msg)
		m.layout() // focus or help may have changed the help's height
		return m, cmd
	case dialMsg:
		if msg.gen != m.dialGen || m.sess != nil {
			return m, nil
		}
		return m, m.dial()
	case dialedMsg:
		return m, m.dialed(msg)
	case batchMsg:
		return m, m.batch(msg)
	case tunedMsg:
		return m, m.tuned(msg)
	case chatSubmitMsg:
		return m, m.sendChat(msg.text)
	case chatSentMsg:
		if msg.err != nil {
			m.chat.Notice("not sent: " + friendly(msg.err))
		}
		return m, nil
	case bulkSubmitMsg:
		return m, m.startBulk(msg.req)
	case bulkStartedMsg:
		return m, m.bulk.Started(msg, time.Now())
	case bulkSavedMsg:
		m.bulk.Saved(msg, time.Now())
		return m, nil
	case secondMsg:
		now := time.Time(msg)
		m.status.Tick(now)
		return m, tea.Batch(m.bulk.Tick(now), m.everySecond())
	}
	// Anything else (cursor and textinput internals) goes to the focused
	// input.
	var cmd tea.Cmd
	switch {
	case m.chat.Focused():
		m.chat, cmd = m.chat.Update(msg)
	case m.bulk.Focused():
		m.bulk, cmd = m.bulk.Update(msg)
	}
	return m, cmd
}

// key routes a key press: ctrl+c always quits; an open input line takes
// every other key; otherwise the root's bindings apply.
func (m *model) key(k tea.KeyMsg) tea.Cmd {
	if key.Matches(k, m.keys.Force) {
		return tea.Quit
	}
	// Page keys scroll the chat even while typing in it.
	switch k.Type {
	case tea.KeyPgUp, tea.KeyPgDown:
		m.chat.ScrollPage(k.Type == tea.KeyPgUp)
		return nil
	}
	var cmd tea.Cmd
	switch {
	case m.chat.Focused():
		m.chat, cmd = m.chat.Update(k)
		return cmd
	case m.bulk.Focused():
		m.bulk, cmd = m.bulk.Update(k)
		return cmd
	}
	// Keys typed faster than the terminal is read arrive as one message
	// ("123"); outside an input line each is a command of its own.
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		var cmds []tea.Cmd
		for i, r := range k.Runes {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt}))
			if rest := k.Runes[i+1:]; len(rest) > 0 && (m.chat.Focused() || m.bulk.Focused()) {
				// The rest is typed into the line that just opened.
				cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: rest, Alt: k.Alt}))
				break
			}
		}
		return tea.Batch(cmds...)
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		return tea.Quit
	case key.Matches(k, m.keys.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.layout()
	case key.Matches(k, m.keys.Tune):
		i := int(k.Runes[0] - '1')
		if i < len(m.panes) {
			m.panes[i].SetOptimistic(!m.panes[i].On())
			return m.requestTune()
		}
	case key.Matches(k, m.keys.All), key.Matches(k, m.keys.None):
		on := key.Matches(k, m.keys.All)
		for i := range m.panes {
			m.panes[i].SetOptimistic(on)
		}
		return m.requestTune()
	case key.Matches(k, m.keys.Chat):
		return m.chat.Focus()
	case key.Matches(k, m.keys.Bulk):
		if m.bulk.Busy() {
			m.status.Note("a transfer is already under way", 1, time.Now())
			return nil
		}
		return m.bulk.Prompt()
	case key.Matches(k, m.keys.ScrollUp), key.Matches(k, m.keys.ScrollDn):
		m.chat.ScrollPage(key.Matches(k, m.keys.ScrollUp))
	}
	return nil
}

// close releases what the model's components hold once the program and its
// goroutines have stopped.
func (m *model) close() {
	m.bulk.Close()
}

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
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
	ctx  context.Context // ends every Cmd and goroutine of the model
	wg   *sync.WaitGroup // the stream goroutines
	cfg  config
	cl   *client.Client
	st   Styles
	keys keyMap
	help help.Model

	dialGen     int
	dialAttempt int
	sess        *client.Session
	str         *stream
	streamGen   int
	replaced    bool // another client took the session; stop reconnecting

	panes  []pane
	chat   chat
	bulk   bulk
	status status
	files  []protocol.File

	// Tuning: panes show what the user asked for at once; one POST is in
	// flight at a time, and if the wish changed meanwhile another follows.
	tuneBusy    bool
	tunePending bool

	width, height int
	panesH        int  // height of the row of panes
	ready         bool // a WindowSizeMsg has arrived

	// Render accounting, for -log: View calls since start.
	views int64
	start time.Time
}

// newModel returns the root model. ctx bounds all its I/O; wg tracks the
// goroutines it starts, so the caller can wait for them after cancelling.
func newModel(ctx context.Context, wg *sync.WaitGroup, cl *client.Client, cfg config) *model {
	st := DefaultStyles()
	keys := defaultKeys()
	h := help.New()
	h.Styles.ShortKey = st.Help.Bold(true)
	h.Styles.FullKey = st.Help.Bold(true)
	h.Styles.ShortDesc = st.Help
	h.Styles.FullDesc = st.Help
	return &model{
		ctx:    ctx,
		wg:     wg,
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

// dial is a Cmd that fetches the channels and files, opens a session tuned
// to what the panes show and starts reading its stream.
func (m *model) dial() tea.Cmd {
	m.dialGen++
	gen, ctx, cl, wg := m.dialGen, m.ctx, m.cl, m.wg
	want := m.wanted()
	streamGen := m.streamGen + 1
	return func() tea.Msg {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		chs, err := cl.Channels(dctx)
		if err != nil {
			return dialedMsg{gen: gen, err: err}
		}
		files, err := cl.Files(dctx)
		if err != nil {
			files = nil // bulk by size still works
		}
		if want == nil { // first session: keep the server's default (none)
			want = []string{}
		}
		sess, err := cl.Open(dctx, want...)
		if err != nil {
			return dialedMsg{gen: gen, err: err}
		}
		str := startStream(ctx, wg, sess, streamGen)
		return dialedMsg{gen: gen, channels: chs, files: files, sess: sess, str: str}
	}
}

// wanted is the set of channels the panes show as on (nil before the
// channels are known).
func (m *model) wanted() []string {
	if m.panes == nil {
		return nil
	}
	out := []string{}
	for i := range m.panes {
		if m.panes[i].on {
			out = append(out, m.panes[i].ch.Name)
		}
	}
	return out
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
		m.bulk.Started(msg.t, msg.f, msg.path, msg.err, time.Now())
		if msg.err == nil && m.bulk.Progress(msg.t, time.Now()) {
			return m, saveBulk(msg.t, msg.f, msg.path)
		}
		return m, nil
	case bulkSavedMsg:
		m.bulk.Saved(msg, time.Now())
		return m, nil
	case secondMsg:
		now := time.Time(msg)
		m.status.Tick(now)
		var cmd tea.Cmd
		if t := m.bulk.t; t != nil && m.bulk.Progress(t, now) {
			cmd = saveBulk(t, m.bulk.file, m.bulk.path)
		}
		return m, tea.Batch(cmd, m.everySecond())
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
			m.panes[i].SetOptimistic(!m.panes[i].on)
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
	case key.Matches(k, m.keys.ScrollUp):
		m.chat.Scroll(-max(m.chat.vp.Height/2, 1))
	case key.Matches(k, m.keys.ScrollDn):
		m.chat.Scroll(max(m.chat.vp.Height/2, 1))
	}
	return nil
}

// dialed takes the result of a dial: on failure it schedules another with
// backoff; on success it builds the panes and waits for the stream.
func (m *model) dialed(msg dialedMsg) tea.Cmd {
	if msg.gen != m.dialGen {
		return nil
	}
	if msg.err != nil {
		m.dialAttempt++
		wait := min(dialFirstRetry<<min(m.dialAttempt-1, 8), dialMaxRetry)
		m.status.Dialing(m.dialAttempt, errors.New(friendly(msg.err)), wait)
		gen := m.dialGen
		return m.after(wait, func(time.Time) tea.Msg { return dialMsg{gen: gen} })
	}
	m.dialAttempt = 0
	m.sess, m.str, m.streamGen = msg.sess, msg.str, msg.str.gen
	m.status.SetSession(msg.sess.ID())
	m.status.Conn(client.Connecting, 0, nil, time.Now())
	m.setChannels(msg.channels)
	m.files = msg.files
	m.bulk.SetFiles(msg.files)
	m.reconcile(msg.sess.Channels())
	m.layout()
	return m.str.next(m.ctx)
}

// setChannels builds one pane per channel, keeping the content and tuning
// of panes whose channel is still there (a redial after the server
// restarted).
func (m *model) setChannels(chs []protocol.Channel) {
	old := m.panes
	m.panes = make([]pane, 0, len(chs))
	for i, ch := range chs {
		p := newPane(ch, i, m.st)
		for j := range old {
			if old[j].ch.Name == p.ch.Name {
				keep := old[j]
				keep.ch, keep.index, keep.cache = p.ch, i, ""
				p = keep
				break
			}
		}
		m.panes = append(m.panes, p)
	}
	m.keys = m.keys.withChannels(len(chs))
}

// batch applies what the stream delivered since the last batch.
func (m *model) batch(b batchMsg) tea.Cmd {
	if b.gen != m.streamGen || m.str == nil {
		return nil
	}
	now := time.Now()
	var cmds []tea.Cmd
	for _, ev := range b.states {
		m.status.Conn(ev.State, ev.Attempt, friendlyErr(ev.Err), now)
		if ev.Session != nil {
			m.status.SetSession(ev.Session.Session)
			m.reconcile(ev.Session.Channels)
		}
	}
	for _, name := range b.order {
		if p := m.pane(name); p != nil {
			p.Append(b.ticks[name])
		}
	}
	if b.tuned != nil {
		m.reconcile(b.tuned.Channels)
	}
	if len(b.chats) > 0 {
		m.chat.Add(b.chats...)
	}
	if len(b.gaps) > 0 {
		var missed uint64
		for _, g := range b.gaps {
			missed += g.Missed
		}
		m.status.Note(fmt.Sprintf("gap: %d events could not be replayed", missed), 1, now)
	}
	if b.bye != nil {
		m.status.Note("server said bye: "+sanitize(b.bye.Reason), 1, now)
	}
	for _, t := range b.xfers {
		if m.bulk.Progress(t, now) {
			cmds = append(cmds, saveBulk(t, m.bulk.file, m.bulk.path))
		}
	}
	m.status.Count(now, b.events)
	if b.closed {
		return tea.Batch(append(cmds, m.streamEnded(b.err))...)
	}
	return tea.Batch(append(cmds, m.str.next(m.ctx))...)
}

// streamEnded handles the end of Run: it gave up on the session. Unless
// another client took the session over, start again with a new one.
func (m *model) streamEnded(err error) tea.Cmd {
	m.sess, m.str = nil, nil
	m.tuneBusy, m.tunePending = false, false
	if errors.Is(err, client.ErrReplaced) {
		m.replaced = true
		m.status.Conn(client.Failed, 0, errors.New("another client took over this session"), time.Now())
		return nil
	}
	m.status.Conn(client.Failed, 0, friendlyErr(err), time.Now())
	gen := m.dialGen
	return m.after(dialFirstRetry, func(time.Time) tea.Msg { return dialMsg{gen: gen} })
}

// pane returns the pane of the named channel, or nil.
func (m *model) pane(name string) *pane {
	for i := range m.panes {
		if m.panes[i].ch.Name == name {
			return &m.panes[i]
		}
	}
	return nil
}

// requestTune sends the tuning the panes show, unless a tune POST is in
// flight, in which case it follows when that one answers.
func (m *model) requestTune() tea.Cmd {
	if m.sess == nil {
		return nil // the next dial opens the session with this tuning
	}
	if m.tuneBusy {
		m.tunePending = true
		return nil
	}
	m.tuneBusy = true
	sess, ctx, want := m.sess, m.ctx, m.wanted()
	return func() tea.Msg {
		tctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		got, err := sess.SetChannels(tctx, want)
		return tunedMsg{sent: want, channels: got, err: err}
	}
}

// tuned takes the answer to a tune POST.
func (m *model) tuned(msg tunedMsg) tea.Cmd {
	m.tuneBusy = false
	if m.tunePending {
		m.tunePending = false
		return m.requestTune()
	}
	if msg.err != nil {
		m.status.Note("tuning failed: "+friendly(msg.err), 2, time.Now())
		if m.sess != nil {
			m.reconcile(m.sess.Channels())
		}
		return nil
	}
	m.reconcile(msg.channels)
	return nil
}

// reconcile records the server's tuned set; unless the user's latest wish is
// still on its way, the panes show it.
func (m *model) reconcile(channels []string) {
	settled := !m.tuneBusy && !m.tunePending
	for i := range m.panes {
		on := slices.Contains(channels, m.panes[i].ch.Name)
		if settled {
			m.panes[i].SetTuned(on)
		} else {
			m.panes[i].server = on
			m.panes[i].cache = ""
		}
	}
}

// sendChat is a Cmd that posts one chat line.
func (m *model) sendChat(text string) tea.Cmd {
	if m.sess == nil {
		m.chat.Notice("not connected; not sent")
		return nil
	}
	sess, ctx, name := m.sess, m.ctx, m.cfg.name
	return func() tea.Msg {
		cctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		_, err := sess.Chat(cctx, name, text)
		return chatSentMsg{err: err}
	}
}

// layout gives every component its size from the window's.
func (m *model) layout() {
	if !m.ready {
		return
	}
	w, h := m.width, m.height
	m.help.Width = w
	m.status.SetWidth(w)
	m.bulk.SetWidth(w)
	rest := h - 2 - lipgloss.Height(m.helpView()) // status and bulk lines
	panesH := max(rest/2, 3)
	m.panesH = panesH
	chatH := max(rest-panesH, 0)
	m.chat.SetSize(w, chatH)
	n := len(m.panes)
	for i := range m.panes {
		pw := w / n
		if i < w%n {
			pw++
		}
		m.panes[i].SetSize(pw, panesH)
	}
}

func (m *model) helpView() string {
	var v string
	switch {
	case m.chat.Focused():
		v = m.help.View(inputKeys{keyMap: m.keys, send: "send"})
	case m.bulk.Focused():
		v = m.help.View(inputKeys{keyMap: m.keys, send: "download"})
	default:
		v = m.help.View(navKeys{m.keys})
	}
	// Full help lays out columns without regard to the width.
	return lipgloss.NewStyle().MaxWidth(max(m.width, 1)).Render(v)
}

// View draws the whole screen: the panes side by side, the chat pane, the
// bulk line, the status line and the help.
func (m *model) View() string {
	m.views++
	if !m.ready {
		return ""
	}
	var rows []string
	switch {
	case len(m.panes) > 0 && m.panes[0].height >= 3:
		views := make([]string, len(m.panes))
		for i := range m.panes {
			views[i] = m.panes[i].View()
		}
		rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, views...))
	case len(m.panes) == 0 && m.panesH >= 3:
		// Not connected yet: a box where the panes will be, saying so.
		msg := "connecting to " + m.cfg.server + "…"
		if m.status.connErr != "" {
			msg = "cannot reach " + m.cfg.server + ": " + m.status.connErr
		}
		rows = append(rows, m.st.Pane.Width(m.width-2).Height(m.panesH-2).
			Render(lipgloss.NewStyle().Width(m.width-2).Render(sanitize(msg))))
	}
	if c := m.chat.View(); c != "" {
		rows = append(rows, c)
	}
	rows = append(rows, m.bulk.View(), m.status.View(), m.helpView())
	out := strings.Join(rows, "\n")
	// Never draw more lines than the terminal has: the top would scroll off.
	if lines := strings.Split(out, "\n"); len(lines) > m.height && m.height > 0 {
		out = strings.Join(lines[len(lines)-m.height:], "\n")
	}
	return out
}

// close releases what the model holds once the program and its goroutines
// have stopped: a bulk file still open is closed (its partial data stays).
func (m *model) close() {
	if m.bulk.file != nil {
		m.bulk.file.Close()
		m.bulk.file = nil
	}
}

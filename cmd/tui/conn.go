package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// dial is a Cmd that fetches the channels and files, opens a session tuned
// to what the panes show (to every channel, before there are panes) and
// starts reading its stream.
func (m *model) dial() tea.Cmd {
	m.dialGen++
	gen, ctx, cl, ts := m.dialGen, m.ctx, m.cl, m.tasks
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
		if want == nil {
			// A new client starts with every channel on, as the page does.
			want = make([]string, len(chs))
			for i, c := range chs {
				want[i] = c.Name
			}
		}
		// Tune what the user had on, of what this server still has.
		want = slices.DeleteFunc(want, func(name string) bool {
			return !slices.ContainsFunc(chs, func(c protocol.Channel) bool { return c.Name == name })
		})
		sess, err := cl.Open(dctx, want...)
		if err != nil {
			return dialedMsg{gen: gen, err: err}
		}
		pub := map[string]bool{}
		for _, c := range chs {
			if c.Published() {
				pub[c.Name] = true
			}
		}
		str := startStream(ctx, ts, sess, streamGen, pub)
		if str == nil {
			return dialedMsg{gen: gen, err: errors.New("stopping")}
		}
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
		if m.panes[i].On() {
			out = append(out, m.panes[i].Name())
		}
	}
	return out
}

// dialed takes the result of a dial: on failure it schedules another with
// backoff; on success it builds the panes and waits for the stream.
func (m *model) dialed(msg dialedMsg) tea.Cmd {
	if msg.gen != m.dialGen {
		if msg.str != nil {
			msg.str.stop() // a dial nobody waits for any more
		}
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
	m.bulk.SetFiles(msg.files)
	m.reconcile(msg.sess.Channels())
	m.layout()
	return m.str.next()
}

// setChannels builds one pane per channel, keeping the content and tuning
// of panes whose channel is still there, of the same kind (a redial after
// the server restarted).
func (m *model) setChannels(chs []protocol.Channel) {
	old := m.panes
	m.panes = make([]pane, 0, len(chs))
	for i, ch := range chs {
		j := slices.IndexFunc(old, func(p pane) bool { return p.Name() == ch.Name && p.Published() == ch.Published() })
		if j < 0 {
			m.panes = append(m.panes, newPane(ch, i, m.st))
			continue
		}
		p := old[j]
		p.SetChannel(ch, i)
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
		if ev.State == client.Connected || ev.State == client.Resumed {
			m.status.SetNode(ev.Node)
		}
		if ev.Session != nil {
			m.status.SetSession(ev.Session.Session)
			m.reconcile(ev.Session.Channels)
		}
	}
	for _, name := range b.order {
		if p := m.pane(name); p != nil {
			p.Append(b.ticks[name])
			p.Publish(b.posts[name])
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
		m.status.Gaps(missed, now)
	}
	if b.bye != nil {
		m.status.Note("server said bye: "+sanitize(b.bye.Reason), 1, now)
	}
	for _, t := range b.xfers {
		cmds = append(cmds, m.bulk.Progress(t, now))
	}
	m.status.Count(now, b.events)
	if b.closed {
		return tea.Batch(append(cmds, m.streamEnded(b.err))...)
	}
	return tea.Batch(append(cmds, m.str.next())...)
}

// streamEnded handles the end of Run: it gave up on the session. Unless
// another client took the session over, start again with a new one.
func (m *model) streamEnded(err error) tea.Cmd {
	m.str.stop()
	m.sess, m.str = nil, nil
	m.tuneBusy, m.tunePending = false, false
	abort := m.bulk.Abort(fmt.Errorf("the stream ended: %s", friendly(err)))
	if errors.Is(err, client.ErrReplaced) {
		m.status.Conn(client.Failed, 0, errors.New("another client took over this session"), time.Now())
		return abort
	}
	m.status.Conn(client.Failed, 0, friendlyErr(err), time.Now())
	gen := m.dialGen
	return tea.Batch(abort, m.after(dialFirstRetry, func(time.Time) tea.Msg { return dialMsg{gen: gen} }))
}

// pane returns the pane of the named channel, or nil.
func (m *model) pane(name string) *pane {
	for i := range m.panes {
		if m.panes[i].Name() == name {
			return &m.panes[i]
		}
	}
	return nil
}

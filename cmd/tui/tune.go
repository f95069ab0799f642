package main

import (
	"context"
	"slices"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

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
		return tunedMsg{sess: sess, channels: got, err: err}
	}
}

// tuned takes the answer to a tune POST.
func (m *model) tuned(msg tunedMsg) tea.Cmd {
	if msg.sess != m.sess {
		return nil // for a session given up since; its state was reset
	}
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
		on := slices.Contains(channels, m.panes[i].Name())
		if settled {
			m.panes[i].SetTuned(on)
		} else {
			m.panes[i].SetServer(on)
		}
	}
}

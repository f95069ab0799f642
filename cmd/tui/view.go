package main

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

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
		v = m.help.View(inputKeys{keyMap: m.keys, send: "download", bulk: true})
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
	case len(m.panes) == 0 && m.panesH >= 3 && m.width >= 4:
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

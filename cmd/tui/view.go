package main

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// Narrowest panes, in cells, while more than one share a row: ticker panes
// fit three to a row at 80 columns; published panes hold lines of text and
// are given more room.
const (
	minTickerWidth    = 24
	minPublishedWidth = 40
	minRowHeight      = 4 // border, title bar and one line
)

// layout gives every component its size from the window's. The panes form
// rows: the ticker channels' first, then the published channels', each kind
// in as many columns as fit. With one row of panes they take half of the
// room above the status line, as the chat does; with more, two thirds. When
// the rows do not fit that, each kind goes into one row of narrower panes,
// and failing that every pane shares one row.
func (m *model) layout() {
	if !m.ready {
		return
	}
	w, h := m.width, m.height
	m.help.Width = w
	m.status.SetWidth(w)
	m.bulk.SetWidth(w)
	rest := h - 2 - lipgloss.Height(m.helpView()) // status and bulk lines

	var tickers, published []int
	for i := range m.panes {
		if m.panes[i].Published() {
			published = append(published, i)
		} else {
			tickers = append(tickers, i)
		}
	}
	all := append(append([]int{}, tickers...), published...)
	var panesH int
	for _, grid := range [][][]int{
		append(gridRows(tickers, w, minTickerWidth), gridRows(published, w, minPublishedWidth)...),
		append(gridRows(tickers, w, w), gridRows(published, w, w)...),
		gridRows(all, w, w),
	} {
		m.grid = grid
		panesH = max(rest/2, 3)
		if len(grid) > 1 {
			panesH = rest * 2 / 3
		}
		if len(grid)*minRowHeight <= panesH {
			break
		}
	}
	m.panesH = panesH
	m.chat.SetSize(w, max(rest-panesH, 0))
	for r, row := range m.grid {
		rh := panesH / len(m.grid)
		if r < panesH%len(m.grid) {
			rh++
		}
		for c, i := range row {
			pw := w / len(row)
			if c < w%len(row) {
				pw++
			}
			m.panes[i].SetSize(pw, rh)
		}
	}
}

// gridRows lays the panes idx out in rows of equal count, as many to a row
// as fit w cells at minW each (at least one; all of them if minW >= w).
func gridRows(idx []int, w, minW int) [][]int {
	if len(idx) == 0 {
		return nil
	}
	cols := len(idx)
	if minW < w {
		cols = min(max(w/minW, 1), len(idx))
	}
	rows := (len(idx) + cols - 1) / cols
	cols = (len(idx) + rows - 1) / rows // even the rows out: 4 in 3 columns is 2+2
	var out [][]int
	for len(idx) > 0 {
		n := min(cols, len(idx))
		out = append(out, idx[:n])
		idx = idx[n:]
	}
	return out
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
	case len(m.panes) > 0 && m.panesH >= 3:
		for _, row := range m.grid {
			views := make([]string, len(row))
			for c, i := range row {
				views[c] = m.panes[i].View()
			}
			rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, views...))
		}
	case len(m.panes) == 0 && m.panesH >= 3 && m.width >= 4:
		// Not connected yet: a box where the panes will be, saying so.
		msg := "connecting to " + m.cfg.server + "…"
		if e := m.status.ConnErr(); e != "" {
			msg = "cannot reach " + m.cfg.server + ": " + e
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

package main

import (
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxPaneRunes bounds what a pane remembers: enough to refill the largest
// terminal after a resize, small enough that a fast channel costs nothing.
const maxPaneRunes = 4096

// pane is the model of one channel's pane: a title bar and the channel's
// characters, wrapped to the pane's width by terminal cells, filling from the
// top and then scrolling so the newest line is at the bottom. It keeps its
// text as lines so that new characters only ever touch the last line and old
// ones never shift. A published channel's pane shows its events as lines
// instead (feed).
type pane struct {
	ch     protocol.Channel // as the server sent it (Name is used on the wire)
	title  string           // what the title bar says, sanitised
	index  int              // 0-based position, also its tune key minus one
	st     Styles
	on     bool // what the pane shows (optimistic until the server answers)
	server bool // what the server last said

	width, height int // outer size, border included

	lines   []string // wrapped lines at the current inner width
	last    []rune   // the last line, still filling
	lastW   int      // cells used by last
	runes   int      // runes held in lines and last
	cache   string   // rendered view; "" when stale
	arrived int64    // characters received in total (events, if published)

	feed *feed // the body of a published channel; nil for a ticker
}

func newPane(ch protocol.Channel, index int, st Styles) pane {
	p := pane{st: st}
	p.SetChannel(ch, index)
	if ch.Published() {
		p.feed = &feed{}
	}
	return p
}

// SetChannel gives the pane its channel and position: at the start, and
// when a redial finds the channel again (its title or place may differ; the
// content stays).
func (p *pane) SetChannel(ch protocol.Channel, index int) {
	title := ch.Title
	if title == "" {
		title = ch.Name
	}
	p.ch, p.title, p.index, p.cache = ch, sanitize(title), index, ""
}

// Name is the channel's name on the wire.
func (p *pane) Name() string { return p.ch.Name }

// Published reports whether the pane shows a published channel's lines.
func (p *pane) Published() bool { return p.feed != nil }

// On reports whether the pane shows its channel as tuned in: the user's
// latest wish, or the server's word once that has come.
func (p *pane) On() bool { return p.on }

// innerWidth is the number of cells available for characters.
func (p *pane) innerWidth() int { return max(p.width-2, 1) }

// innerHeight is the number of lines available for characters (the border
// and the title bar take three).
func (p *pane) innerHeight() int { return max(p.height-3, 0) }

// SetSize gives the pane its outer size and rewraps its text.
func (p *pane) SetSize(w, h int) {
	if w == p.width && h == p.height {
		return
	}
	oldInner := p.innerWidth()
	p.width, p.height = w, h
	p.cache = ""
	if p.feed != nil {
		p.feed.SetWidth(p.innerWidth())
		return
	}
	if p.innerWidth() != oldInner {
		p.rewrap()
	}
}

// rewrap lays all remembered characters out again at the current width.
func (p *pane) rewrap() {
	var all strings.Builder
	for _, l := range p.lines {
		all.WriteString(l)
	}
	all.WriteString(string(p.last))
	p.lines, p.last, p.lastW, p.runes = p.lines[:0], p.last[:0], 0, 0
	p.append(all.String())
}

// Append adds characters that arrived on the channel.
func (p *pane) Append(text string) {
	if text == "" {
		return
	}
	if p.feed != nil {
		p.Publish([]string{text})
		return
	}
	p.cache = ""
	p.arrived += int64(utf8.RuneCountInString(text))
	p.append(text)
}

// Publish adds the events of a published channel, oldest first.
func (p *pane) Publish(data []string) {
	if p.feed == nil || len(data) == 0 {
		return
	}
	p.cache = ""
	p.arrived += int64(len(data))
	for _, d := range data {
		p.feed.Add(d)
	}
	p.feed.Trim()
}

func (p *pane) append(text string) {
	w := p.innerWidth()
	for _, r := range text {
		r = tickRune(r)
		rw := protocol.RuneWidth(r)
		if p.lastW+rw > w && p.lastW > 0 {
			p.lines = append(p.lines, string(p.last))
			p.last, p.lastW = p.last[:0], 0
		}
		p.last = append(p.last, r)
		p.lastW += rw
		p.runes++
	}
	p.trim()
}

// trim drops whole lines from the top while the pane holds more than
// maxPaneRunes, so the lines that stay never move sideways.
func (p *pane) trim() {
	drop := 0
	for drop < len(p.lines) && p.runes > maxPaneRunes {
		p.runes -= len([]rune(p.lines[drop]))
		drop++
	}
	if drop > 0 {
		p.lines = append(p.lines[:0], p.lines[drop:]...)
	}
}

// tickRune keeps a channel character if it is one a channel may send and
// replaces it otherwise: a server we do not control could send anything.
func tickRune(r rune) rune {
	if protocol.SafeRune(r) {
		return r
	}
	return placeholder
}

// SetTuned records what the server says about this channel and shows it.
func (p *pane) SetTuned(on bool) {
	if p.server != on || p.on != on {
		p.cache = ""
	}
	p.server, p.on = on, on
}

// SetServer records what the server says about this channel while the
// user's own wish is still on its way: the pane keeps showing the wish.
func (p *pane) SetServer(on bool) {
	if p.server != on {
		p.cache = ""
	}
	p.server = on
}

// SetOptimistic shows the channel as on or off before the server answers.
func (p *pane) SetOptimistic(on bool) {
	if p.on != on {
		p.cache = ""
	}
	p.on = on
}

// View draws the pane at exactly its outer size.
func (p *pane) View() string {
	if p.width < 3 || p.height < 3 {
		return ""
	}
	if p.cache != "" {
		return p.cache
	}
	w := p.innerWidth()
	color := p.st.channelColor(p.index)

	// Title bar: "1 Letters" on the left, on/off on the right.
	var state string
	switch {
	case p.on && p.on == p.server:
		state = p.st.On.Render("on")
	case p.on:
		state = p.st.Pending.Render("on…")
	case p.on != p.server:
		state = p.st.Pending.Render("off…")
	default:
		state = p.st.Off.Render("off")
	}
	label := string(rune('1'+p.index)) + " " + p.title
	if p.index >= 9 { // no key tunes it
		label = "  " + p.title
	}
	room := w - lipgloss.Width(state) - 1
	label = truncateCells(label, max(room, 0))
	title := p.st.Title.Foreground(color).Render(label)
	gap := max(w-lipgloss.Width(title)-lipgloss.Width(state), 0)
	bar := lipgloss.NewStyle().MaxWidth(w).Render(title + strings.Repeat(" ", gap) + state)
	rows := make([]string, 0, p.height-2)
	rows = append(rows, bar+strings.Repeat(" ", max(w-lipgloss.Width(bar), 0)))

	// Body: the newest lines that fit, filling from the top until the pane
	// is full, then scrolling.
	h := p.innerHeight()
	if p.feed != nil {
		for _, line := range p.feed.Last(h) {
			rows = append(rows, line+strings.Repeat(" ", max(w-lipgloss.Width(line), 0)))
		}
	}
	total := len(p.lines)
	if len(p.last) > 0 {
		total++
	}
	for i := max(total-h, 0); i < total; i++ {
		line, used := string(p.last), p.lastW
		if i < len(p.lines) {
			line, used = p.lines[i], cellWidth(p.lines[i])
		}
		if used > w { // a two-cell character in a one-cell pane
			line, used = "…", 1
		}
		rows = append(rows, padCells(line, used, w))
	}
	for len(rows) < h+1 {
		rows = append(rows, strings.Repeat(" ", w))
	}
	style := p.st.Pane
	if p.on {
		style = p.st.PaneOn.BorderForeground(color)
	}
	p.cache = style.Render(strings.Join(rows, "\n"))
	return p.cache
}

// cellWidth measures s in terminal cells, the way panes lay characters out.
func cellWidth(s string) int {
	n := 0
	for _, r := range s {
		n += protocol.RuneWidth(r)
	}
	return n
}

// padCells pads s, which takes used cells, with spaces to w cells.
func padCells(s string, used, w int) string {
	if used >= w {
		return s
	}
	return s + strings.Repeat(" ", w-used)
}

// truncateCells cuts s to at most w cells, marking a cut with "…".
func truncateCells(s string, w int) string {
	if cellWidth(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		rw := protocol.RuneWidth(r)
		if used+rw > w-1 {
			break
		}
		b.WriteRune(r)
		used += rw
	}
	b.WriteRune('…')
	return b.String()
}

package main

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Bounds on what a published channel's pane remembers. Its events are text
// from publishers: a log may send thousands of lines, an event may hold 64
// KiB. The pane keeps the newest maxFeedLines lines, each cut to
// maxFeedLineRunes before it is wrapped, so a resize rewraps little.
const (
	maxFeedLines     = 300
	maxFeedLineRunes = 1000
)

// feed is the body of a published channel's pane: the text of its events as
// lines, newest at the bottom, each wrapped to the pane's width in terminal
// cells. An event whose data has several lines adds each of them. Every line
// is sanitised as chat is: escape sequences and bidi controls arrive inert.
type feed struct {
	lines []string   // sanitised, oldest first
	rows  [][]string // rows[i]: lines[i] wrapped at width
	nrows int        // rows in total
	width int        // cells
}

// SetWidth rewraps every line to w cells.
func (f *feed) SetWidth(w int) {
	w = max(w, 1)
	if w == f.width {
		return
	}
	f.width = w
	f.nrows = 0
	for i, l := range f.lines {
		f.rows[i] = wrapCells(l, w)
		f.nrows += len(f.rows[i])
	}
}

// Add takes one event's data; Trim bounds what is kept.
func (f *feed) Add(data string) {
	// Only the last maxFeedLines lines of an event can stay.
	for i, n := len(data), 0; i > 0; n++ {
		i = strings.LastIndexByte(data[:i], '\n')
		if n == maxFeedLines-1 && i >= 0 {
			data = data[i+1:]
			break
		}
	}
	for l := range strings.SplitSeq(data, "\n") {
		l = sanitize(cutRunes(l, maxFeedLineRunes))
		r := wrapCells(l, max(f.width, 1))
		f.lines = append(f.lines, l)
		f.rows = append(f.rows, r)
		f.nrows += len(r)
	}
}

// Trim drops the oldest lines beyond maxFeedLines; it is called once after a
// batch of Adds, so the lines kept are moved once, not once an event.
func (f *feed) Trim() {
	if n := len(f.lines) - maxFeedLines; n > 0 {
		for _, r := range f.rows[:n] {
			f.nrows -= len(r)
		}
		f.lines = append(f.lines[:0], f.lines[n:]...)
		f.rows = append(f.rows[:0], f.rows[n:]...)
	}
}

// Last returns the newest h rows (fewer if there are fewer), oldest first.
func (f *feed) Last(h int) []string {
	out := make([]string, 0, min(h, f.nrows))
	skip := max(f.nrows-h, 0)
	for _, rs := range f.rows {
		if skip >= len(rs) {
			skip -= len(rs)
			continue
		}
		out = append(out, rs[skip:]...)
		skip = 0
	}
	return out
}

// wrapCells breaks s into rows of at most w cells, at a space where there
// is one. Characters are measured one by one, as a terminal lays them out;
// a row that lipgloss (which draws the border around it) measures wider is
// cut until both agree, and a character wider than the pane becomes "…".
func wrapCells(s string, w int) []string {
	var rows []string
	var row []rune
	used, space := 0, -1 // cells in row; index in row of its last space
	for _, r := range s {
		rw := protocol.RuneWidth(r)
		if used+rw > w && used > 0 {
			if space > 0 {
				rows = append(rows, string(row[:space]))
				row = append([]rune(nil), row[space+1:]...)
			} else {
				rows = append(rows, string(row))
				row = nil
			}
			used, space = cellWidth(string(row)), slices.Index(row, ' ')
		}
		if r == ' ' {
			space = len(row)
		}
		row = append(row, r)
		used += rw
	}
	rows = append(rows, string(row))
	for i, r := range rows {
		for lipgloss.Width(r) > w {
			rr := []rune(r)
			if len(rr) <= 1 {
				r = "…"
				break
			}
			r = string(rr[:len(rr)-1])
		}
		rows[i] = r
	}
	return rows
}

// cutRunes cuts s to at most n runes, marking a cut with "…".
func cutRunes(s string, n int) string {
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

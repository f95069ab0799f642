package main

import (
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func testPane(w, h int) pane {
	p := newPane(protocol.Channel{Name: "two", Title: "Ideographs", Width: 2}, 1, DefaultStyles())
	p.SetSize(w, h)
	return p
}

// checkBox asserts that a view is exactly w cells wide on every line and h
// lines high.
func checkBox(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Fatalf("view has %d lines, want %d:\n%s", len(lines), h, view)
	}
	for i, l := range lines {
		if got := lipgloss.Width(l); got != w {
			t.Fatalf("line %d is %d cells, want %d: %q\n%s", i, got, w, l, view)
		}
	}
}

func TestPaneWrapsByCells(t *testing.T) {
	tests := []struct {
		name  string
		outer int    // pane width, border included
		text  string // appended
		want  []string
	}{
		{"cjk even", 8, "漢字漢字漢字漢字", []string{"漢字漢", "字漢字", "漢字"}},
		{"cjk odd width leaves a cell", 9, "漢字漢字漢字漢字", []string{"漢字漢", "字漢字", "漢字"}},
		{"latin", 6, "abcdefghij", []string{"abcd", "efgh", "ij"}},
		{"mixed", 7, "a漢b字cd漢", []string{"a漢b", "字cd", "漢"}},
		{"cjk in one cell", 3, "漢a", []string{"漢", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPane(tt.outer, 10)
			p.Append(tt.text)
			got := append(append([]string{}, p.lines...), string(p.last))
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("lines %q, want %q", got, tt.want)
			}
			checkBox(t, p.View(), tt.outer, 10)
		})
	}
}

func TestPaneShowsNewestLines(t *testing.T) {
	p := testPane(6, 5) // 4 cells, 2 body lines
	p.Append("abcdefghijkl")
	view := p.View()
	checkBox(t, view, 6, 5)
	if strings.Contains(view, "abcd") || !strings.Contains(view, "efgh") || !strings.Contains(view, "ijkl") {
		t.Fatalf("want the two newest lines:\n%s", view)
	}
}

func TestPaneBoundedAndStable(t *testing.T) {
	p := testPane(23, 8)
	var all strings.Builder
	for i := range 3 * maxPaneRunes {
		all.WriteRune(rune('A' + i%26))
	}
	p.Append(all.String())
	if p.runes > maxPaneRunes {
		t.Fatalf("pane holds %d runes, limit %d", p.runes, maxPaneRunes)
	}
	if p.runes < maxPaneRunes-p.innerWidth() {
		t.Fatalf("pane trimmed too much: %d runes", p.runes)
	}
	// The text kept is the tail of what arrived.
	kept := strings.Join(p.lines, "") + string(p.last)
	if !strings.HasSuffix(all.String(), kept) {
		t.Fatal("kept text is not the tail of the input")
	}
	// Trimming drops whole lines: every full line is still full.
	for i, l := range p.lines {
		if cellWidth(l) != p.innerWidth() {
			t.Fatalf("line %d is %d cells after trimming, want %d", i, cellWidth(l), p.innerWidth())
		}
	}
	checkBox(t, p.View(), 23, 8)
}

func TestPaneRewrapsOnResize(t *testing.T) {
	p := testPane(12, 6)
	text := strings.Repeat("漢a字", 20)
	p.Append(text)
	for _, w := range []int{5, 31, 3, 80, 12} {
		p.SetSize(w, 6)
		if got := strings.Join(p.lines, "") + string(p.last); got != text {
			t.Fatalf("width %d: text changed on rewrap", w)
		}
		checkBox(t, p.View(), w, 6)
	}
}

func TestPaneReplacesUnsafeRunes(t *testing.T) {
	p := testPane(20, 5)
	p.Append("a\x1b[2J\u202Eb\u200Bc")

	view := p.View()
	if strings.ContainsAny(view, "\x1b\u202E\u200B") {
		t.Fatalf("unsafe rune in view %q", view)
	}
	if !strings.Contains(view, "a\uFFFD[2J\uFFFDb\uFFFDc") {
		t.Fatalf("want placeholders, got:\n%s", view)
	}
}

func TestPaneTooNarrowForCJK(t *testing.T) {
	p := testPane(3, 4)
	p.Append("漢")
	v := p.View()
	checkBox(t, v, 3, 4)
	if !strings.Contains(v, "│…│") {
		t.Fatalf("a two-cell character in a one-cell pane should show as …:\n%s", v)
	}
}

func TestPaneTitleState(t *testing.T) {
	p := testPane(24, 4)
	for _, tt := range []struct {
		on, server bool
		want       string
	}{
		{false, false, "off"},
		{true, false, "on…"},
		{true, true, "on"},
		{false, true, "off…"},
	} {
		p.server = tt.server
		p.SetOptimistic(tt.on)
		p.cache = ""
		title := strings.Split(p.View(), "\n")[1]
		if !strings.Contains(title, "2 Ideographs") || !strings.HasSuffix(strings.TrimSuffix(title, "│"), tt.want) {
			t.Errorf("on=%v server=%v: title %q, want it to end in %q", tt.on, tt.server, title, tt.want)
		}
	}
}

// TestWidthsAgree checks the assumption the panes' layout rests on: lipgloss
// (which pads and draws the borders) measures every character a channel may
// send as protocol.RuneWidth does (which wraps the lines).
func TestWidthsAgree(t *testing.T) {
	for r := rune(0x20); r < 0x30000; r++ {
		if !protocol.SafeRune(r) {
			continue
		}
		if lw, pw := lipgloss.Width(string(r)), protocol.RuneWidth(r); lw != pw {
			t.Errorf("%U: lipgloss width %d, protocol width %d", r, lw, pw)
		}
	}
	for _, r := range []rune{placeholder, '…'} {
		if lipgloss.Width(string(r)) != 1 || protocol.RuneWidth(r) != 1 {
			t.Errorf("%U must be one cell", r)
		}
	}
}

func TestPaneCountsArrivalsOnce(t *testing.T) {
	p := testPane(12, 6)
	p.Append("漢字ab")
	p.SetSize(30, 6) // rewrap
	p.SetSize(7, 6)
	if p.arrived != 4 {
		t.Fatalf("arrived = %d after resizes, want 4", p.arrived)
	}
}

package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func testFeedPane(w, h int) pane {
	p := newPane(protocol.Channel{Name: "log", Title: "Build log", Kind: protocol.KindPublished}, 3, DefaultStyles())
	p.SetSize(w, h)
	return p
}

// body is the pane's view without its border and title bar, trailing
// spaces cut.
func body(t *testing.T, p *pane) []string {
	t.Helper()
	lines := strings.Split(p.View(), "\n")
	var out []string
	for _, l := range lines[2 : len(lines)-1] {
		l = strings.TrimSuffix(strings.TrimPrefix(l, "│"), "│")
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}

func TestFeedWrapsByCells(t *testing.T) {
	tests := []struct {
		name  string
		outer int // pane width, border included
		data  string
		want  []string
	}{
		{"fits", 12, "build ok", []string{"build ok"}},
		{"latin wraps at a space", 12, "tests passed in 3s", []string{"tests", "passed in", "3s"}},
		{"leading spaces kept", 14, "  indented xyz", []string{"  indented", "xyz"}},
		{"long word is cut hard", 8, "abcdefghijkl", []string{"abcdef", "ghijkl"}},
		{"cjk by cells", 8, "漢字漢字漢字漢字", []string{"漢字漢", "字漢字", "漢字"}},
		{"cjk in one cell", 3, "漢", []string{"…"}},
		{"multi-line data", 20, "first\nsecond\n\nfourth", []string{"first", "second", "", "fourth"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testFeedPane(tt.outer, 10)
			p.Publish([]string{tt.data})
			checkBox(t, p.View(), tt.outer, 10)
			got := body(t, &p)[:len(tt.want)]
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("rows %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFeedNewestAtBottom(t *testing.T) {
	p := testFeedPane(20, 6) // 3 body lines
	p.Publish([]string{"one", "two"})
	if got := body(t, &p); strings.Join(got, "|") != "one|two|" {
		t.Fatalf("rows %q: the first lines fill from the top", got)
	}
	p.Publish([]string{"three", "four\nfive"})
	if got := body(t, &p); strings.Join(got, "|") != "three|four|five" {
		t.Fatalf("rows %q, want the newest three", got)
	}
	if p.arrived != 4 {
		t.Fatalf("arrived %d, want 4 events", p.arrived)
	}
	// A resize rewraps what is kept: narrower, the last line takes two rows.
	p.Publish([]string{"a line of twenty-two c"})
	p.SetSize(14, 6)
	checkBox(t, p.View(), 14, 6)
	if got := body(t, &p); strings.Join(got, "|") != "five|a line of|twenty-two c" {
		t.Fatalf("rows after resize %q", got)
	}
}

func TestFeedBounded(t *testing.T) {
	p := testFeedPane(30, 8)
	long := strings.Repeat("x", 5*maxFeedLineRunes)
	for i := range 3 * maxFeedLines {
		if i == 2*maxFeedLines {
			p.Publish([]string{long})
			continue
		}
		p.Publish([]string{"line"})
	}
	if n := len(p.feed.lines); n != maxFeedLines {
		t.Fatalf("feed holds %d lines, want %d", n, maxFeedLines)
	}
	total := 0
	for _, rs := range p.feed.rows {
		total += len(rs)
	}
	if total != p.feed.nrows {
		t.Fatalf("row count %d, counted %d", p.feed.nrows, total)
	}
	// One event of more lines than the pane keeps: its last ones stay.
	p.Publish([]string{strings.Repeat("x\n", 2*maxFeedLines) + "end"})
	if n := len(p.feed.lines); n != maxFeedLines || p.feed.lines[n-1] != "end" || p.feed.lines[0] != "x" {
		t.Fatalf("after a long event: %d lines, first %q, last %q", n, p.feed.lines[0], p.feed.lines[n-1])
	}
	for _, l := range p.feed.lines {
		if n := len([]rune(l)); n > maxFeedLineRunes {
			t.Fatalf("a line of %d runes kept, want at most %d", n, maxFeedLineRunes)
		}
	}
	checkBox(t, p.View(), 30, 8)
}

// TestFeedInert publishes what would act on a terminal: every one arrives as
// visible, harmless text, and the pane keeps its size.
func TestFeedInert(t *testing.T) {
	p := testFeedPane(60, 8)
	p.Publish([]string{
		"red \x1b[31mRED\x1b[0m clip \x1b]52;c;aGk=\x07 end",
		"\u202Eevil\u202C \u2066iso\u2069 \u200Fmark \u061Calm",
		"<b>html</b> & \x9b2J tab\there",
	})
	view := p.View()
	checkBox(t, view, 60, 8)
	for _, r := range view {
		if r == 0x1b || (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || isBidiControl(r) {
			t.Fatalf("%U reached the view:\n%q", r, view)
		}
	}
	for _, want := range []string{"red \uFFFD[31mRED\uFFFD[0m", "]52;c;aGk=", "\uFFFDevil\uFFFD", "iso", "<b>html</b> &", "tab here"} {
		if !strings.Contains(view, want) {
			t.Fatalf("want %q shown as text:\n%s", want, view)
		}
	}
}

func TestWrapCellsFits(t *testing.T) {
	for _, s := range []string{"", "a", "漢字 漢字 a b c", "ab cd ef gh", strings.Repeat("漢a ", 30), "e\u0301e\u0301e\u0301 x"} {
		for w := 1; w <= 12; w++ {
			for _, r := range wrapCells(s, w) {
				if lipgloss.Width(r) > w {
					t.Fatalf("wrapCells(%q, %d) gave a row of %d cells: %q", s, w, lipgloss.Width(r), r)
				}
			}
		}
	}
}

// BenchmarkPublishedFrame is one frame of a busy published channel: a batch
// of 100 log lines of 120 characters (some wide) taken by an 80-column pane,
// then drawn.
func BenchmarkPublishedFrame(b *testing.B) {
	p := testFeedPane(80, 12)
	batch := make([]string, 100)
	for i := range batch {
		batch[i] = fmt.Sprintf("%06d 2026-12-07T17:50:00Z INFO build: compiling package 漢字 %s", i, strings.Repeat("x", 70))
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Publish(batch)
		_ = p.View()
	}
}

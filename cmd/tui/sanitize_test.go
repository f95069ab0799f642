package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	const P = "\uFFFD"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"ascii", "hello, world", "hello, world"},
		{"cjk and greek kept", "漢字 αβγ →∀", "漢字 αβγ →∀"},
		{"emoji kept", "ok 👍", "ok 👍"},
		{"clear screen", "\x1b[2J", P + "[2J"},
		{"osc 52 clipboard", "\x1b]52;c;aGk=\x07", P + "]52;c;aGk=" + P},
		{"osc 8 hyperlink st", "\x1b]8;;http://x\x1b\\link", P + "]8;;http://x" + P + "\\link"},
		{"8-bit csi", "a\u009b2Jb", "a" + P + "2Jb"},
		{"8-bit osc", "\u009d0;title\u009c", P + "0;title" + P},
		{"bell backspace del", "a\x07b\x08c\x7fd", "a" + P + "b" + P + "c" + P + "d"},
		{"nul", "a\x00b", "a" + P + "b"},
		{"tab newline cr", "a\tb\nc\rd", "a b c d"},
		{"line paragraph separators", "a\u2028b\u2029c", "a b c"},
		{"rlo override", "abc\u202Edef", "abc" + P + "def"},
		{"lre rle pdf lro", "\u202A\u202B\u202C\u202D", P + P + P + P},
		{"isolates", "\u2066\u2067\u2068\u2069", P + P + P + P},
		{"lrm rlm alm", "\u200E\u200F\u061C", P + P + P},
		{"zero width", "a\u200Bb\u200Dc\uFEFF", "a" + P + "b" + P + "c" + P},
		{"soft hyphen", "a\u00ADb", "a" + P + "b"},
		{"invalid utf8", "a\xffb\xc3", "a" + P + "b" + P},
		{"private use", "\uE000", P},
		{"noncharacter", "\uFFFF\uFDD0", P + P},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sanitize(tt.in)
			if got != tt.want {
				t.Fatalf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("sanitize(%q) = %q is not valid UTF-8", tt.in, got)
			}
		})
	}
}

// TestSanitizeNeverPassesControls checks the property the terminal relies on
// over every code point of the BMP and beyond: no control or format
// character survives.
func TestSanitizeNeverPassesControls(t *testing.T) {
	var b strings.Builder
	for r := rune(0); r <= 0x2FFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		b.WriteRune(r)
	}
	out := sanitize(b.String())
	for _, r := range out {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || isBidiControl(r) {
			t.Fatalf("sanitize let %U through", r)
		}
	}
}

func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0x200E || r == 0x200F || r == 0x061C
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"\x1b[2J", "\x1b]52;c;aGk=\x07", "abc\u202Edef", "漢字"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := sanitize(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		for _, r := range out {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || isBidiControl(r) {
				t.Fatalf("sanitize(%q) let %U through", s, r)
			}
		}
		if sanitize(out) != out {
			t.Fatalf("sanitize is not idempotent on %q", s)
		}
	})
}

package main

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// placeholder is shown in place of every character that must not reach the
// terminal. It is visible (so the reader sees that something was removed) and
// one cell wide, so it never breaks the layout.
const placeholder = '\uFFFD'

// sanitize returns s as inert text for the terminal: chat text and names come
// from strangers, and PROTOCOL.md says every client must display them as data.
// Escape sequences lose their ESC (and C1 CSI/OSC) introducer, so what is left
// of them prints as plain characters; C0 and C1 controls, DEL, invalid UTF-8,
// and format characters (bidi embeddings, overrides, isolates and marks,
// zero-width characters, the BOM, soft hyphens) become U+FFFD. Tabs, line and
// paragraph separators become spaces so one message stays one line.
func sanitize(s string) string {
	// Fast path: most chat text is printable ASCII.
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			b.WriteRune(placeholder)
			i += max(n, 1)
			continue
		}
		b.WriteRune(safeRune(r))
		i += n
	}
	return b.String()
}

// safeRune maps one decoded rune to what may be written to a terminal.
func safeRune(r rune) rune {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
		return ' '
	case r < 0x20 || (r >= 0x7f && r <= 0x9f):
		return placeholder // C0, DEL, C1 (incl. 8-bit CSI 0x9b and OSC 0x9d)
	case unicode.Is(unicode.Cf, r):
		// Format characters: U+200E/F, U+061C, U+202A-202E, U+2066-2069,
		// zero-width spaces and joiners, U+FEFF, U+00AD and the like.
		return placeholder
	case unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r) || r > unicode.MaxRune:
		return placeholder
	case isNoncharacter(r):
		return placeholder
	}
	return r
}

// isNoncharacter reports the 66 code points Unicode reserves as never to be
// interchanged (U+FDD0-FDEF and the last two of every plane).
func isNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

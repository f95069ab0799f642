package protocol

import (
	"unicode"

	"github.com/mattn/go-runewidth"
	"golang.org/x/text/unicode/bidi"
)

// SafeRune reports whether r may be sent by a channel: an assigned, printable
// letter, number, punctuation or symbol (no controls, format or bidi
// characters, surrogates, private use, spaces, combining marks or default
// ignorable code points), not of a
// right-to-left class, that takes one or two terminal cells and draws as a
// character of its own next to any other safe rune, so that a client can add
// up widths character by character.
func SafeRune(r rune) bool {
	if !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) {
		return false
	}
	if unicode.In(r, unicode.M, unicode.C, unicode.Z) {
		return false
	}
	// Letters a renderer skips, like the Hangul fillers: blank, yet measured
	// as wide, and a way to hide text.
	if unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) {
		return false
	}
	p, _ := bidi.LookupRune(r)
	switch p.Class() {
	case bidi.R, bidi.AL, bidi.AN, bidi.NSM, bidi.BN,
		bidi.LRO, bidi.RLO, bidi.LRE, bidi.RLE, bidi.PDF,
		bidi.LRI, bidi.RLI, bidi.FSI, bidi.PDI:
		return false
	}
	if joins(r) {
		return false
	}
	w := RuneWidth(r)
	return w == 1 || w == 2
}

// joins reports whether r merges with a neighbouring safe character into one
// grapheme cluster (Unicode UAX #29), which a width measured per character
// would get wrong. Marks, controls and format characters are refused before
// this; what is left are the few letters and symbols with a
// Grapheme_Cluster_Break other than Any.
func joins(r rune) bool {
	return unicode.Is(unicode.Regional_Indicator, r) || // GB12-13: two draw as one flag
		unicode.Is(unicode.Other_Grapheme_Extend, r) || // GB9: Extend, e.g. halfwidth kana voicing marks
		unicode.Is(graphemeJoiners, r)
}

// graphemeJoiners holds the Grapheme_Cluster_Break classes the unicode
// package has no table for.
var graphemeJoiners = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0x0D4E, Hi: 0x0D4E, Stride: 1}, // Prepend (GB9b): Malayalam dot reph
		{Lo: 0x0E33, Hi: 0x0E33, Stride: 1}, // SpacingMark (GB9a): Thai sara am
		{Lo: 0x0EB3, Hi: 0x0EB3, Stride: 1}, // SpacingMark (GB9a): Lao vowel sign am
		{Lo: 0x1100, Hi: 0x11FF, Stride: 1}, // L, V, T (GB6-8): conjoining Hangul jamo
		{Lo: 0xA960, Hi: 0xA97F, Stride: 1}, // L: Hangul jamo extended-A
		{Lo: 0xD7B0, Hi: 0xD7FF, Stride: 1}, // V, T: Hangul jamo extended-B
	},
	R32: []unicode.Range32{
		{Lo: 0x111C2, Hi: 0x111C3, Stride: 1}, // Prepend: Sharada
		{Lo: 0x1193F, Hi: 0x1193F, Stride: 1}, // Prepend: Dives Akuru
		{Lo: 0x11941, Hi: 0x11941, Stride: 1}, // Prepend: Dives Akuru
		{Lo: 0x11A84, Hi: 0x11A89, Stride: 1}, // Prepend: Soyombo
		{Lo: 0x11D46, Hi: 0x11D46, Stride: 1}, // Prepend: Masaram Gondi repha
		{Lo: 0x11F02, Hi: 0x11F02, Stride: 1}, // Prepend: Kawi
		{Lo: 0x1F3FB, Hi: 0x1F3FF, Stride: 1}, // Extend (GB9): emoji skin-tone modifiers
	},
}

// RuneWidth is the number of terminal cells r takes, as every xhrsse client
// measures it (go-runewidth's non-East-Asian table). It does not follow the
// locale: runewidth.RuneWidth switches to the East Asian table when LANG,
// LC_ALL or LC_CTYPE name a CJK locale (or RUNEWIDTH_EASTASIAN=1), which
// would make a channel's advertised width depend on the server's environment.
func RuneWidth(r rune) int {
	return cellWidth.RuneWidth(r)
}

// cellWidth is the fixed measure behind RuneWidth. It has no lookup table
// of its own (no CreateLUT), so concurrent use is safe.
var cellWidth = &runewidth.Condition{EastAsianWidth: false, StrictEmojiNeutral: true}

package protocol_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-runewidth"
	"golang.org/x/text/unicode/bidi"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// span is an inclusive range of code points.
type span struct{ lo, hi rune }

func TestSafeRuneRejects(t *testing.T) {
	for _, tt := range []struct {
		why   string
		spans []span
	}{
		{"C0 controls", []span{{0x0000, 0x001F}}},
		{"DEL", []span{{0x007F, 0x007F}}},
		{"C1 controls", []span{{0x0080, 0x009F}}},
		{"format: soft hyphen", []span{{0x00AD, 0x00AD}}},
		{"format: zero width space, joiners, LRM, RLM", []span{{0x200B, 0x200F}}},
		{"format: bidi embeddings and overrides", []span{{0x202A, 0x202E}}},
		{"format: bidi isolates", []span{{0x2066, 0x2069}}},
		{"format: Arabic letter mark", []span{{0x061C, 0x061C}}},
		{"format: BOM / zero width no-break space", []span{{0xFEFF, 0xFEFF}}},
		{"format: tags", []span{{0xE0001, 0xE0001}, {0xE0020, 0xE007F}}},
		{"combining marks", []span{{0x0300, 0x036F}, {0x20D0, 0x20F0}}},
		{"spacing mark", []span{{0x0903, 0x0903}}},
		{"variation selectors", []span{{0xFE00, 0xFE0F}}},
		{"surrogates", []span{{0xD800, 0xDFFF}}},
		{"private use", []span{{0xE000, 0xF8FF}, {0xF0000, 0xF0000}, {0x10FFFD, 0x10FFFD}}},
		{"unassigned", []span{{0x0378, 0x0379}, {0x0380, 0x0383}, {0x2FFFF, 0x2FFFF}}},
		{"noncharacters", []span{{0xFDD0, 0xFDEF}, {0xFFFE, 0xFFFF}, {0x10FFFF, 0x10FFFF}}},
		{"not code points", []span{{-1, -1}, {0x110000, 0x110000}, {0x7FFFFFFF, 0x7FFFFFFF}}},
		{"spaces", []span{{0x0020, 0x0020}, {0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}}},
		{"line and paragraph separators", []span{{0x2028, 0x2029}}},
		{"Hebrew letters", []span{{0x05D0, 0x05EA}}},
		{"Hebrew presentation forms", []span{{0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28}}},
		{"Arabic letters", []span{{0x0627, 0x063A}, {0xFB50, 0xFB51}}},
		{"Arabic-Indic digits", []span{{0x0660, 0x0669}}},
		{"Syriac, Thaana, N'Ko", []span{{0x0710, 0x0710}, {0x0780, 0x0780}, {0x07CA, 0x07CA}}},
		{"default ignorable: Hangul fillers", []span{{0x3164, 0x3164}, {0xFFA0, 0xFFA0}}},
		// Characters that merge with a neighbour into one grapheme.
		{"regional indicators", []span{{0x1F1E6, 0x1F1FF}}},
		{"emoji skin-tone modifiers", []span{{0x1F3FB, 0x1F3FF}}},
		{"Thai and Lao AM (SpacingMark)", []span{{0x0E33, 0x0E33}, {0x0EB3, 0x0EB3}}},
		{"halfwidth kana voicing marks (Extend)", []span{{0xFF9E, 0xFF9F}}},
		{"Malayalam dot reph (Prepend)", []span{{0x0D4E, 0x0D4E}}},
		{"conjoining Hangul jamo", []span{{0x1100, 0x11FF}, {0xA960, 0xA97C}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}}},
	} {
		for _, s := range tt.spans {
			for r := s.lo; r <= s.hi && r >= s.lo; r++ {
				if protocol.SafeRune(r) {
					t.Errorf("%s: SafeRune(%U) = true", tt.why, r)
				}
			}
		}
	}
}

func TestSafeRuneAccepts(t *testing.T) {
	for _, tt := range []struct {
		why   string
		runes string
		width int
	}{
		{"ASCII letters and digits", "AZaz09", 1},
		{"ASCII punctuation and symbols", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", 1},
		{"Latin-1 and Latin Extended", "éÆßøÿĀžƒ", 1},
		{"Greek", "ΑΩαωάΐ", 1},
		{"Cyrillic", "АЯаяЖжЁё", 1},
		{"arrows", "←↑→↓↔⇒", 1},
		{"math and box drawing", "∀∑√∞≠─│┼", 1},
		{"other scripts, left to right", "अกაԱ", 1},
		{"CJK ideographs", "一漢字龍丁", 2},
		{"kana and Hangul syllables", "あアカ한가각", 2},
		{"fullwidth forms", "ＡＺ！", 2},
		{"halfwidth katakana", "ｱｶ", 1},
	} {
		for _, r := range tt.runes {
			if !protocol.SafeRune(r) {
				t.Errorf("%s: SafeRune(%U %q) = false", tt.why, r, r)
			}
			if w := protocol.RuneWidth(r); w != tt.width {
				t.Errorf("%s: RuneWidth(%U %q) = %d, want %d", tt.why, r, r, w, tt.width)
			}
		}
	}
}

// TestSafeRuneSweep checks every code point: a safe rune must also pass the
// standard library's own tests for what PROTOCOL.md promises (graphic, not a
// space, mark, control or format character, not right to left), and its width
// must be what the terminal client measures (lipgloss, as Bubble Tea renders)
// alone and in a run of itself between letters, so that no safe rune merges
// with a neighbour into one grapheme.
func TestSafeRuneSweep(t *testing.T) {
	t.Parallel()
	if protocol.SafeRune(-1) || protocol.SafeRune(unicode.MaxRune+1) {
		t.Error("SafeRune accepts a value that is not a code point")
	}
	safe, failures := 0, 0
	fail := func(format string, args ...any) {
		t.Helper()
		if failures++; failures <= 20 {
			t.Errorf(format, args...)
		}
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !protocol.SafeRune(r) {
			continue
		}
		safe++
		p, _ := bidi.LookupRune(r)
		switch {
		case !utf8.ValidRune(r), !unicode.IsGraphic(r), !unicode.IsPrint(r), unicode.IsSpace(r),
			unicode.IsMark(r), unicode.IsControl(r), unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs):
			fail("SafeRune(%U) = true for a rune of the wrong category", r)
		case p.Class() == bidi.R || p.Class() == bidi.AL || p.Class() == bidi.AN:
			fail("SafeRune(%U) = true for a right-to-left rune", r)
		}
		w := protocol.RuneWidth(r)
		if w != 1 && w != 2 {
			fail("SafeRune(%U) = true with width %d", r, w)
		}
		if lw := lipgloss.Width(string(r)); lw != w {
			fail("%U: RuneWidth %d, lipgloss.Width %d", r, w, lw)
		}
		run := "a" + string(r) + string(r) + "a"
		if got := lipgloss.Width(run); got != 2+2*w {
			fail("%U: lipgloss.Width(%q) = %d, want %d", r, run, got, 2+2*w)
		}
		if got := runewidth.StringWidth(run); got != 2+2*w {
			fail("%U: runewidth.StringWidth(%q) = %d, want %d", r, run, got, 2+2*w)
		}
	}
	// Tens of thousands of letters, ideographs and symbols remain: the
	// filter must not have become so strict that repertoires run dry.
	if safe < 100000 {
		t.Errorf("only %d safe runes", safe)
	}
}

// TestRuneWidthIgnoresLocale runs this test binary again with a Japanese
// locale and RUNEWIDTH_EASTASIAN=1, which switch go-runewidth's default to
// East Asian widths, and checks that RuneWidth still measures arrows, Greek
// and Cyrillic as one cell. A channel's advertised width must not depend on
// the environment the server was started in.
func TestRuneWidthIgnoresLocale(t *testing.T) {
	const probe = "\u2190αЖ─"
	if os.Getenv("PROTOCOL_TEST_LOCALE_CHILD") == "1" {
		// Show that the environment did switch go-runewidth's default,
		// so that this check is not passing by accident.
		if runewidth.RuneWidth('\u2190') != 2 {
			t.Fatalf("runewidth.RuneWidth(U+2190) = %d in an East Asian locale; the probe no longer works", runewidth.RuneWidth('\u2190'))
		}
		for _, r := range probe {
			if w := protocol.RuneWidth(r); w != 1 {
				t.Errorf("RuneWidth(%U) = %d in an East Asian locale, want 1", r, w)
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRuneWidthIgnoresLocale$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "PROTOCOL_TEST_LOCALE_CHILD=1", "LANG=ja_JP.UTF-8", "LC_ALL=ja_JP.UTF-8", "RUNEWIDTH_EASTASIAN=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRuneWidthIgnoresLocale") {
		t.Fatalf("in a Japanese locale: %v\n%s", err, out)
	}
	for _, r := range probe {
		if w := protocol.RuneWidth(r); w != 1 {
			t.Errorf("RuneWidth(%U) = %d, want 1", r, w)
		}
	}
}

func ExampleSafeRune() {
	for _, r := range "a漢→ \u05D0\u0301\U0001F1E6" {
		fmt.Printf("%U %v %d\n", r, protocol.SafeRune(r), protocol.RuneWidth(r))
	}
	// Output:
	// U+0061 true 1
	// U+6F22 true 2
	// U+2192 true 1
	// U+0020 false 1
	// U+05D0 false 1
	// U+0301 false 0
	// U+1F1E6 false 1
}

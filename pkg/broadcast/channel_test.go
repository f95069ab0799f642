package broadcast

import (
	"strings"
	"testing"
	"unicode"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestParseRepertoire(t *testing.T) {
	tests := []struct {
		spec    string
		want    string
		wantErr string
	}{
		{"0041-0043", "ABC", ""},
		{"U+0041, u+03B1", "Aα", ""},
		{"=ab語", "ab語", ""},
		{"", "", "empty"},
		{"0041-", "", "bad code point"},
		{"0043-0041", "", "bad range"},
		{"110000", "", "bad code point"},
		{"0007", "", "not a safe"},      // control
		{"0301", "", "not a safe"},      // combining acute
		{"05D0", "", "not a safe"},      // Hebrew alef: right to left
		{"202E", "", "not a safe"},      // bidi override
		{"0378", "", "not a safe"},      // unassigned
		{"E000", "", "not a safe"},      // private use
		{"0020", "", "not a safe"},      // space
		{"=a\u200bb", "", "not a safe"}, // zero width space
		{"=\xff", "", "invalid UTF-8"},
	}
	for _, tc := range tests {
		got, err := ParseRepertoire(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRepertoire(%q) error %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ParseRepertoire(%q) = %q, %v; want %q", tc.spec, string(got), err, tc.want)
		}
	}
}

func TestDefaultChannelsAreSafeAndFixedWidth(t *testing.T) {
	wantWidth := map[string]int{"one": 1, "two": 2, "three": 1}
	for _, c := range DefaultChannels() {
		w, err := c.validate()
		if err != nil {
			t.Fatal(err)
		}
		if w != wantWidth[c.Name] {
			t.Errorf("channel %s width %d, want %d", c.Name, w, wantWidth[c.Name])
		}
		for _, r := range c.Repertoire {
			if !protocol.SafeRune(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Mn, unicode.Me, unicode.Mc) {
				t.Errorf("channel %s: U+%04X is not safe", c.Name, r)
			}
		}
	}
}

func TestChannelValidation(t *testing.T) {
	ok := []rune("ab")
	tests := []ChannelConfig{
		{Name: "", Rate: 1, Repertoire: ok},
		{Name: "a\nb", Rate: 1, Repertoire: ok},
		{Name: "chat", Rate: 1, Repertoire: ok},
		{Name: "error", Published: true},
		{Name: "open", Published: true},
		{Name: "message", Published: true},
		{Name: "x", Rate: 0, Repertoire: ok},
		{Name: "x", Rate: 1},
		{Name: "x", Rate: 1, Repertoire: []rune("a語")}, // mixed widths
		{Name: "x", Rate: 1, Repertoire: []rune{0x1b}},
	}
	for _, c := range tests {
		if _, err := New(WithChannels(c)); err == nil {
			t.Errorf("channel %+v accepted", c)
		}
	}
	if _, err := New(WithChannels(DefaultChannels()[0], DefaultChannels()[0])); err == nil {
		t.Error("duplicate channel accepted")
	}
}

func TestDefaultChannelsAt(t *testing.T) {
	for _, tc := range []struct {
		rates []float64
		want  []float64
	}{
		{nil, []float64{5, 3, 2}},
		{[]float64{50}, []float64{50, 50, 50}},
		{[]float64{1, 2, 3}, []float64{1, 2, 3}},
		{[]float64{1, 2}, []float64{1, 2, 2}},
	} {
		cs := DefaultChannelsAt(tc.rates...)
		for i, c := range cs {
			if c.Rate != tc.want[i] {
				t.Errorf("DefaultChannelsAt(%v)[%d].Rate = %v, want %v", tc.rates, i, c.Rate, tc.want[i])
			}
		}
	}
}

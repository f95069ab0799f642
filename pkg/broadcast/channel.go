package broadcast

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A ChannelConfig describes one channel: what it is called, how often it
// ticks and which characters it draws from.
//
// A Published channel does not tick: its events are what publishers send
// (Hub.Publish), and it has no Rate or Repertoire.
type ChannelConfig struct {
	Name       string
	Title      string
	Rate       float64 // ticks per second
	Repertoire []rune
	Published  bool
}

// Default repertoires, as code point ranges (see ParseRepertoire).
const (
	// Latin, Greek and Cyrillic letters: one cell each.
	DefaultRepertoireOne = "0041-005A,0061-007A,0391-03A1,03A3-03A9,03B1-03C9,0410-044F"
	// CJK unified ideographs: two cells each.
	DefaultRepertoireTwo = "4E00-4FFF"
	// Arrows and mathematical operators: one cell each.
	DefaultRepertoireThree = "2190-21FF,2200-22FF"
)

// DefaultChannels returns the three channels of PROTOCOL.md.
func DefaultChannels() []ChannelConfig {
	must := func(s string) []rune {
		rs, err := ParseRepertoire(s)
		if err != nil {
			panic(err)
		}
		return rs
	}
	return []ChannelConfig{
		{Name: protocol.ChannelOne, Title: "Letters", Rate: 5, Repertoire: must(DefaultRepertoireOne)},
		{Name: protocol.ChannelTwo, Title: "Ideographs", Rate: 3, Repertoire: must(DefaultRepertoireTwo)},
		{Name: protocol.ChannelThree, Title: "Arrows & symbols", Rate: 2, Repertoire: must(DefaultRepertoireThree)},
	}
}

// DefaultChannelsAt returns the default channels ticking at the given rates:
// one rate for every channel, or one per channel in order. Tests and tools
// use it to make the channels fast or quiet.
func DefaultChannelsAt(rates ...float64) []ChannelConfig {
	cs := DefaultChannels()
	for i := range cs {
		switch {
		case len(rates) == 1:
			cs[i].Rate = rates[0]
		case i < len(rates):
			cs[i].Rate = rates[i]
		}
	}
	return cs
}

// ParseRepertoire reads a comma-separated list of code points and ranges in
// hex ("0041-005A,03B1"; "U+" prefixes allowed) or, with a leading "=", the
// literal characters themselves. Every character must be protocol.SafeRune.
func ParseRepertoire(spec string) ([]rune, error) {
	var rs []rune
	if lit, ok := strings.CutPrefix(spec, "="); ok {
		if !utf8.ValidString(lit) {
			return nil, fmt.Errorf("repertoire: invalid UTF-8")
		}
		rs = []rune(lit)
	} else {
		for part := range strings.SplitSeq(spec, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			lo, hi, isRange := strings.Cut(part, "-")
			a, err := parseCodePoint(lo)
			if err != nil {
				return nil, err
			}
			b := a
			if isRange {
				if b, err = parseCodePoint(hi); err != nil {
					return nil, err
				}
			}
			if b < a || b-a > 1<<16 {
				return nil, fmt.Errorf("repertoire: bad range %q", part)
			}
			for r := a; r <= b; r++ {
				rs = append(rs, r)
			}
		}
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("repertoire: empty")
	}
	for _, r := range rs {
		if !protocol.SafeRune(r) {
			return nil, fmt.Errorf("repertoire: U+%04X is not a safe printable character", r)
		}
	}
	return rs, nil
}

func parseCodePoint(s string) (rune, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "U+"), "u+")
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil || n > utf8.MaxRune {
		return 0, fmt.Errorf("repertoire: bad code point %q", s)
	}
	return rune(n), nil
}

func (c ChannelConfig) validate() (width int, err error) {
	if !protocol.ValidEventName(c.Name) || strings.ContainsAny(c.Name, " /?&#%") {
		return 0, fmt.Errorf("broadcast: bad channel name %q", c.Name)
	}
	switch c.Name {
	case protocol.EventSession, protocol.EventTuned, protocol.EventChat, protocol.EventBulk,
		protocol.EventBulkEnd, protocol.EventGap, protocol.EventBye:
		return 0, fmt.Errorf("broadcast: channel name %q is an event name of the protocol", c.Name)
	case "message", "open", "error":
		// EventSource's own: an event named "error" reaches a page's
		// error listeners as if the stream had failed.
		return 0, fmt.Errorf("broadcast: channel name %q is an event name of EventSource", c.Name)
	}
	if c.Published {
		if c.Rate != 0 || len(c.Repertoire) != 0 {
			return 0, fmt.Errorf("broadcast: channel %s: a published channel has no rate or repertoire", c.Name)
		}
		return 0, nil
	}
	if c.Rate <= 0 || c.Rate > 10_000 {
		return 0, fmt.Errorf("broadcast: channel %s: rate %v must be in (0, 10000]", c.Name, c.Rate)
	}
	if len(c.Repertoire) == 0 {
		return 0, fmt.Errorf("broadcast: channel %s: empty repertoire", c.Name)
	}
	width = protocol.RuneWidth(c.Repertoire[0])
	for _, r := range c.Repertoire {
		if !protocol.SafeRune(r) {
			return 0, fmt.Errorf("broadcast: channel %s: U+%04X is not a safe printable character", c.Name, r)
		}
		if w := protocol.RuneWidth(r); w != width {
			return 0, fmt.Errorf("broadcast: channel %s: U+%04X is %d cells wide, the others %d", c.Name, r, w, width)
		}
	}
	return width, nil
}

// channel is a running channel: index is its bit in a session's tuned set.
type channel struct {
	ChannelConfig
	index int
	width int
}

func (c *channel) info() protocol.Channel {
	if c.Published {
		return protocol.Channel{Name: c.Name, Title: c.Title, Kind: protocol.KindPublished}
	}
	return protocol.Channel{
		Name: c.Name, Title: c.Title, Kind: protocol.KindTicker, Rate: c.Rate,
		Repertoire: string(c.Repertoire), Width: c.width,
	}
}

// Describe validates channel settings and describes them as GET /channels
// does, before any hub runs them (a cluster node compares them with the
// other nodes' before it starts).
func Describe(cs []ChannelConfig) ([]protocol.Channel, error) {
	out := make([]protocol.Channel, len(cs))
	for i, cfg := range cs {
		w, err := cfg.validate()
		if err != nil {
			return nil, err
		}
		out[i] = (&channel{ChannelConfig: cfg, index: i, width: w}).info()
	}
	return out, nil
}

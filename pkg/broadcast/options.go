package broadcast

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// options holds a hub's settings. New fills in the defaults first, then
// applies each Option in order.
type options struct {
	channels      []ChannelConfig
	sessionTTL    time.Duration
	maxSessions   int
	maxStreams    int
	replayEvents  int           // kept whatever their age
	replayAge     time.Duration // kept while younger, up to replayMax
	replayMax     int           // hard cap on a session's buffer, in events
	chatRate      float64
	chatBurst     int
	maxChatText   int
	maxBulk       int64
	maxTransfers  int
	filesDir      string
	writeTimeout  time.Duration
	pingInterval  time.Duration
	flushInterval time.Duration
	logger        *slog.Logger
	seed          [32]byte // zero: a random one
	relay         Relay    // nil: a hub on its own
}

func defaultOptions() options {
	return options{
		channels:      DefaultChannels(),
		sessionTTL:    protocol.DefaultSessionTTL,
		maxSessions:   100_000,
		maxStreams:    15_000,
		replayEvents:  protocol.ReplayMinEvents,
		replayAge:     protocol.ReplayMinAge,
		replayMax:     16 * protocol.ReplayMinEvents,
		chatRate:      protocol.DefaultChatRate,
		chatBurst:     protocol.DefaultChatBurst,
		maxChatText:   protocol.DefaultMaxChatText,
		maxBulk:       256 << 20,
		maxTransfers:  2,
		writeTimeout:  30 * time.Second,
		pingInterval:  protocol.PingInterval,
		flushInterval: DefaultFlushInterval,
		logger:        slog.New(slog.DiscardHandler),
	}
}

// DefaultFlushInterval halves the writes of a stream tuned to every default
// channel (ticks fall at least 67 ms apart, so a shorter interval saves none)
// for at most 200 ms more on a tick, about 30 ms on average, and nothing on
// chat: docs/PERFORMANCE.md, "What each figure means".
const DefaultFlushInterval = 200 * time.Millisecond

// An Option changes one setting of a Hub. Bad values are reported by New.
type Option func(*options) error

// WithChannels replaces the default channels.
func WithChannels(cs ...ChannelConfig) Option {
	return func(o *options) error {
		if len(cs) == 0 || len(cs) > 64 {
			return errors.New("broadcast: between 1 and 64 channels")
		}
		o.channels = cs
		return nil
	}
}

// WithSessionTTL sets how long a session outlives its last stream.
func WithSessionTTL(d time.Duration) Option {
	return positive(d, "session TTL", func(o *options) { o.sessionTTL = d })
}

// WithMaxSessions caps the number of live sessions.
func WithMaxSessions(n int) Option {
	return positive(n, "max sessions", func(o *options) { o.maxSessions = n })
}

// WithMaxStreams caps the number of open streams.
func WithMaxStreams(n int) Option {
	return positive(n, "max streams", func(o *options) { o.maxStreams = n })
}

// WithReplay sets what a session keeps for resume: at least minEvents events,
// and any event younger than minAge, up to maxEvents in all.
func WithReplay(minEvents int, minAge time.Duration, maxEvents int) Option {
	return func(o *options) error {
		if minEvents < 1 || minAge < 0 || maxEvents < minEvents {
			return fmt.Errorf("broadcast: replay %d events, %v, max %d: need 1 <= min <= max", minEvents, minAge, maxEvents)
		}
		o.replayEvents, o.replayAge, o.replayMax = minEvents, minAge, maxEvents
		return nil
	}
}

// WithChatRate sets each session's chat allowance: rate messages a second,
// with bursts of burst.
func WithChatRate(rate float64, burst int) Option {
	return func(o *options) error {
		if rate <= 0 || burst < 1 {
			return fmt.Errorf("broadcast: chat rate %v burst %d must be positive", rate, burst)
		}
		o.chatRate, o.chatBurst = rate, burst
		return nil
	}
}

// WithMaxChatText caps chat text, in characters.
func WithMaxChatText(n int) Option {
	return positive(n, "max chat text", func(o *options) { o.maxChatText = n })
}

// WithMaxBulk caps one bulk transfer, in bytes.
func WithMaxBulk(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("broadcast: max bulk %d must not be negative", n)
		}
		o.maxBulk = n
		return nil
	}
}

// WithMaxTransfers caps the bulk transfers a session may have under way.
func WithMaxTransfers(n int) Option {
	return positive(n, "max transfers", func(o *options) { o.maxTransfers = n })
}

// WithFilesDir names the directory whose regular files bulk may send by name.
// Names are resolved inside it with os.Root, so no path leaves it.
func WithFilesDir(dir string) Option {
	return func(o *options) error {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("broadcast: files dir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("broadcast: files dir %s is not a directory", dir)
		}
		o.filesDir = dir
		return nil
	}
}

// WithWriteTimeout bounds one write to a stream; a write that takes longer
// ends the stream (the client resumes).
func WithWriteTimeout(d time.Duration) Option {
	return positive(d, "write timeout", func(o *options) { o.writeTimeout = d })
}

// WithPingInterval sets the silence after which a stream sends ": ping".
func WithPingInterval(d time.Duration) Option {
	return positive(d, "ping interval", func(o *options) { o.pingInterval = d })
}

// WithFlushInterval makes each stream write at most once per d: a stream
// that wrote less than d ago holds new events back until d has passed since
// that write, so that ticks arriving close together leave in one write and
// one flush (a write costs far more than the bytes in it). A stream quiet for
// d writes at once, and urgent events (chat, tuned) and the stream's end cut
// the wait short, so only ticks wait. Zero writes every event at once. The
// default is DefaultFlushInterval.
func WithFlushInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > time.Second {
			return fmt.Errorf("broadcast: flush interval %v must be in [0, 1s]", d)
		}
		o.flushInterval = d
		return nil
	}
}

// WithSeed sets the seed of the channels' characters and of generated bulk
// data. Hubs with the same seed and channels tick the same characters at the
// same instants; by default every hub draws its own seed.
func WithSeed(seed [32]byte) Option {
	return func(o *options) error {
		if seed == ([32]byte{}) {
			return errors.New("broadcast: the zero seed is not a seed")
		}
		o.seed = seed
		return nil
	}
}

// WithRelay joins the hub to others through r (a cluster, pkg/cluster):
// chat goes through r, and r hears of every session's changes.
func WithRelay(r Relay) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("broadcast: nil relay")
		}
		o.relay = r
		return nil
	}
}

// WithLogger sets the hub's logger; by default it logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("broadcast: nil logger")
		}
		o.logger = l
		return nil
	}
}

// positive is an Option that refuses a v that is not positive, and sets it
// otherwise.
func positive[T int | time.Duration](v T, what string, set func(*options)) Option {
	return func(o *options) error {
		if v <= 0 {
			return fmt.Errorf("broadcast: %s %v must be positive", what, v)
		}
		set(o)
		return nil
	}
}

package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// config is what the flags ask for.
type config struct {
	opts            server.Options
	log             *slog.Logger
	shutdownTimeout time.Duration
	cluster         *cluster.Config // nil without -nats
}

// parseFlags reads the flags into a config, or says which flag is wrong.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var (
		addr        = fs.String("addr", "127.0.0.1:8080", "listen address")
		ttl         = fs.Duration("session-ttl", protocol.DefaultSessionTTL, "how long a session outlives its last stream")
		filesDir    = fs.String("files", "", "directory whose files bulk can send by name")
		maxStreams  = fs.Int("max-streams", 15_000, "most open streams (503 beyond)")
		maxSessions = fs.Int("max-sessions", 100_000, "most live sessions (503 beyond)")
		maxBody     = fs.Int64("max-body", protocol.DefaultMaxBody, "largest POST body, bytes")
		maxChat     = fs.Int("max-chat", protocol.DefaultMaxChatText, "longest chat text, characters")
		chatRate    = fs.Float64("chat-rate", protocol.DefaultChatRate, "chat messages a second per session")
		chatBurst   = fs.Int("chat-burst", protocol.DefaultChatBurst, "chat burst per session")
		maxBulk     = fs.Int64("max-bulk", 256<<20, "largest bulk transfer, bytes")
		maxXfers    = fs.Int("max-transfers", 2, "bulk transfers under way per session")
		writeTO     = fs.Duration("write-timeout", 30*time.Second, "longest a write to a stream may block before the stream is ended")
		flushEvery  = fs.Duration("flush-interval", broadcast.DefaultFlushInterval, "write each stream at most once per this, batching ticks (chat is never held back); 0: every event at once")
		shutdownTO  = fs.Duration("shutdown-timeout", 10*time.Second, "how long shutdown waits for streams and requests")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
		tlsCert     = fs.String("tls-cert", "", "serve HTTPS (and HTTP/2) with this certificate file (PEM); needs -tls-key")
		tlsKey      = fs.String("tls-key", "", "the private key file (PEM) for -tls-cert")
		selfSigned  = fs.Bool("tls-self-signed", false, "serve HTTPS (and HTTP/2) with a new self-signed certificate for localhost, printing its fingerprint")
		pprofAddr   = fs.String("pprof", "", "serve net/http/pprof on this separate address (e.g. 127.0.0.1:6060); off when empty")
		natsURL     = fs.String("nats", "", "join a cluster through this NATS broker (JetStream on), e.g. nats://127.0.0.1:4222, or these brokers of a NATS cluster, comma-separated; see docs/SCALING.md")
		natsReps    = fs.Int("nats-replicas", 1, "with -nats: how many brokers keep each copy of the cluster's stream and buckets (3 for a NATS cluster of three)")
		natsCreds   = fs.String("nats-creds", "", "with -nats: a NATS credentials file (user JWT and nkey seed)")
		natsCA      = fs.String("nats-ca", "", "with -nats: PEM file of the CAs to trust for the brokers' TLS certificates (default: the system's)")
		nodeName    = fs.String("node", "", "this node's name in the cluster (default: host-pid); letters, digits, - and _")
		handoverTO  = fs.Duration("handover", 3*time.Second, "with -nats: after the streams end at shutdown, how long to keep handing sessions over to the nodes their clients come back to")
		tokenFile   = fs.String("publish-token-file", "", "file of bearer tokens (one a line) that may publish to the -channel channels; also $"+tokenEnv)
		publishRate = fs.Float64("publish-rate", protocol.DefaultPublishRate, "events a second each published channel accepts (bursts of a second's worth); a text body is read more slowly, a JSON one answered 429")
		origins     listFlag
		published   channelFlag
	)
	fs.Var(&published, "channel", "a published channel NAME or NAME=TITLE, fed by POST /channels/NAME/events; repeatable")
	fs.Var(&origins, "allow-origin", "foreign origin allowed to POST (and CORS); repeatable or comma-separated")
	defaults := broadcast.DefaultChannels()
	rates := make([]*float64, len(defaults))
	chars := make([]*string, len(defaults))
	for i, c := range defaults {
		rates[i] = fs.Float64("rate-"+c.Name, c.Rate, "ticks a second of channel "+c.Name)
		chars[i] = fs.String("chars-"+c.Name, "", "repertoire of channel "+c.Name+`: hex code points and ranges ("0041-005A,03B1") or "=" and the characters (default: `+c.Title+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	channels := make([]broadcast.ChannelConfig, len(defaults))
	for i, c := range defaults {
		if *rates[i] <= 0 {
			return nil, fmt.Errorf("-rate-%s %v: must be positive", c.Name, *rates[i])
		}
		c.Rate = *rates[i]
		if *chars[i] != "" {
			rs, err := broadcast.ParseRepertoire(*chars[i])
			if err != nil {
				return nil, fmt.Errorf("-chars-%s: %w", c.Name, err)
			}
			c.Repertoire = rs
		}
		channels[i] = c
	}
	channels = append(channels, published...)
	if *publishRate <= 0 {
		return nil, fmt.Errorf("-publish-rate %v: must be positive", *publishRate)
	}
	tokens, err := publishTokens(*tokenFile)
	if err != nil {
		return nil, err
	}
	opts := server.Options{
		Addr: *addr,
		Hub: []broadcast.Option{
			broadcast.WithChannels(channels...),
			broadcast.WithSessionTTL(*ttl),
			broadcast.WithMaxStreams(*maxStreams),
			broadcast.WithMaxSessions(*maxSessions),
			broadcast.WithMaxChatText(*maxChat),
			broadcast.WithChatRate(*chatRate, *chatBurst),
			broadcast.WithMaxBulk(*maxBulk),
			broadcast.WithMaxTransfers(*maxXfers),
			broadcast.WithWriteTimeout(*writeTO),
			broadcast.WithFlushInterval(*flushEvery),
		},
		API: server.Config{
			AllowOrigins: origins, MaxBody: *maxBody,
			PublishTokens: tokens, PublishRate: *publishRate,
		},
		Logger:   log,
		Handover: *handoverTO,
		Pprof:    *pprofAddr,
	}
	if *filesDir != "" {
		opts.Hub = append(opts.Hub, broadcast.WithFilesDir(*filesDir))
	}
	switch {
	case *selfSigned && (*tlsCert != "" || *tlsKey != ""):
		return nil, errors.New("-tls-self-signed and -tls-cert/-tls-key exclude each other")
	case *selfSigned:
		cert, fp, err := server.SelfSigned("localhost", "127.0.0.1", "::1")
		if err != nil {
			return nil, err
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		log.Info("self-signed certificate", "sha256", fp)
	case *tlsCert != "" || *tlsKey != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	c := &config{opts: opts, log: log, shutdownTimeout: *shutdownTO}
	if *natsURL != "" {
		if *nodeName == "" {
			host, _ := os.Hostname()
			*nodeName = fmt.Sprintf("%s-%d", strings.ReplaceAll(host, ".", "-"), os.Getpid())
		}
		described, err := broadcast.Describe(channels)
		if err != nil {
			return nil, err
		}
		c.cluster = &cluster.Config{
			URL: *natsURL, Replicas: *natsReps, Credentials: *natsCreds, RootCA: *natsCA,
			Node: *nodeName, Channels: described, Logger: log,
		}
	}
	return c, nil
}

// listFlag collects a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// tokenEnv names the environment variable holding a publish token.
const tokenEnv = "XHRSSE_PUBLISH_TOKEN"

// publishTokens gathers the publish tokens of $XHRSSE_PUBLISH_TOKEN and of
// file (one a line, blank lines skipped), if given.
func publishTokens(file string) ([]string, error) {
	var tokens []string
	if t := strings.TrimSpace(os.Getenv(tokenEnv)); t != "" {
		tokens = append(tokens, t)
	}
	if file == "" {
		return tokens, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-publish-token-file: %w", err)
	}
	n := len(tokens)
	for line := range strings.Lines(string(data)) {
		if t := strings.TrimSpace(line); t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == n {
		return nil, fmt.Errorf("-publish-token-file %s: no token in it", file)
	}
	return tokens, nil
}

// channelFlag collects -channel NAME[=TITLE], one published channel each.
type channelFlag []broadcast.ChannelConfig

func (c *channelFlag) String() string {
	names := make([]string, len(*c))
	for i, ch := range *c {
		names[i] = ch.Name
	}
	return strings.Join(names, ",")
}

func (c *channelFlag) Set(v string) error {
	name, title, _ := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		return errors.New("want NAME or NAME=TITLE")
	}
	if title = strings.TrimSpace(title); title == "" {
		title = name
	}
	*c = append(*c, broadcast.ChannelConfig{Name: name, Title: title, Published: true})
	return nil
}

// Command server runs an xhrsse server: three channels of random characters,
// chat and bulk delivery over one SSE stream per session, steered by POSTs.
//
//	go run ./cmd/server -addr 127.0.0.1:8080
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
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

func run(args []string, stderr *os.File) error {
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
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	channels := make([]broadcast.ChannelConfig, len(defaults))
	for i, c := range defaults {
		if *rates[i] <= 0 {
			return fmt.Errorf("-rate-%s %v: must be positive", c.Name, *rates[i])
		}
		c.Rate = *rates[i]
		if *chars[i] != "" {
			rs, err := broadcast.ParseRepertoire(*chars[i])
			if err != nil {
				return fmt.Errorf("-chars-%s: %w", c.Name, err)
			}
			c.Repertoire = rs
		}
		channels[i] = c
	}
	channels = append(channels, published...)
	if *publishRate <= 0 {
		return fmt.Errorf("-publish-rate %v: must be positive", *publishRate)
	}
	tokens, err := publishTokens(*tokenFile)
	if err != nil {
		return err
	}
	opts := []broadcast.Option{
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
		broadcast.WithLogger(log),
	}
	if *filesDir != "" {
		opts = append(opts, broadcast.WithFilesDir(*filesDir))
	}
	var node *cluster.Node
	if *natsURL != "" {
		if *nodeName == "" {
			host, _ := os.Hostname()
			*nodeName = fmt.Sprintf("%s-%d", strings.ReplaceAll(host, ".", "-"), os.Getpid())
		}
		described, err := broadcast.Describe(channels)
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		node, err = cluster.Dial(dctx, cluster.Config{
			URL: *natsURL, Replicas: *natsReps, Credentials: *natsCreds, RootCA: *natsCA,
			Node: *nodeName, Channels: described, Logger: log,
		})
		cancel()
		if err != nil {
			return err
		}
		defer node.Close()
		opts = append(opts, broadcast.WithSeed(node.Seed()), broadcast.WithRelay(node))
	}
	hub, err := broadcast.New(opts...)
	if err != nil {
		return err
	}
	cfg := server.Config{
		AllowOrigins: origins, MaxBody: *maxBody, Logger: log,
		PublishTokens: tokens, PublishRate: *publishRate,
	}
	if node != nil {
		cfg.Cluster, cfg.Collectors = node, node.Collectors()
	}
	api, err := server.New(hub, cfg)
	if err != nil {
		hub.Close(context.Background())
		return err
	}
	if node != nil {
		if err := node.Start(hub, api); err != nil {
			hub.Close(context.Background())
			return err
		}
		log.Info("cluster", "node", node.Name(), "nats", *natsURL)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		hub.Close(context.Background())
		return err
	}
	srv := server.HTTPServer(api, hub)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	scheme := "http"
	switch {
	case *selfSigned && (*tlsCert != "" || *tlsKey != ""):
		ln.Close()
		hub.Close(context.Background())
		return errors.New("-tls-self-signed and -tls-cert/-tls-key exclude each other")
	case *selfSigned:
		cert, fp, err := server.SelfSigned("localhost", "127.0.0.1", "::1")
		if err != nil {
			ln.Close()
			hub.Close(context.Background())
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		log.Info("self-signed certificate", "sha256", fp)
		scheme = "https"
	case *tlsCert != "" || *tlsKey != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			ln.Close()
			hub.Close(context.Background())
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}

	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			ln.Close()
			hub.Close(context.Background())
			return fmt.Errorf("-pprof: %w", err)
		}
		psrv := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go psrv.Serve(pln)
		defer psrv.Close()
		log.Info("pprof", "url", "http://"+pln.Addr().String()+"/debug/pprof/")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			// ServeTLS turns on HTTP/2: every stream and POST of a browser
			// then shares one connection, past the 6-per-host limit of HTTP/1.1.
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	log.Info("listening", "url", scheme+"://"+ln.Addr().String()+"/", "channels", len(channels),
		"published", len(published), "publish_tokens", len(tokens))

	select {
	case err := <-served:
		hub.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", *shutdownTO)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTO)
	defer cancel()
	err = server.Shutdown(sctx, srv, hub)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if node != nil {
		// The clients whose streams just ended come back through the load
		// balancer to other nodes, which take their sessions from here:
		// keep answering a while so they resume without a gap.
		hctx, cancel := context.WithTimeout(context.Background(), *handoverTO)
		n := node.Handover(hctx)
		cancel()
		log.Info("handover done", "sessions_left", n)
	}
	log.Info("stopped", "err", err)
	return err
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

// pprofMux serves the profiles on their own mux and address, so they are
// never reachable through the public listener.
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

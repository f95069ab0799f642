package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// Options configure Start: a whole server, as cmd/server runs it.
type Options struct {
	// Addr is where to listen, e.g. "127.0.0.1:8080"; port 0 picks a free
	// port. Empty means "127.0.0.1:0".
	Addr string
	// TLS, when set, serves HTTPS with it, and with it HTTP/2: every stream
	// and POST of a browser then shares one connection, past the
	// 6-per-host limit of HTTP/1.1. Nil serves plain HTTP.
	TLS *tls.Config
	// Hub are the hub's options. Start puts Logger before them and, with a
	// Cluster, the cluster's seed and relay after them.
	Hub []broadcast.Option
	// API is the HTTP API's config; a nil API.Logger becomes Logger.
	API Config
	// Logger receives the hub's, the API's and the http.Server's logs and
	// the instance's own (listening, hand-over). Nil logs nothing, except
	// the http.Server's errors, which then go to the standard logger.
	Logger *slog.Logger
	// Cluster, when set, joins the server to a cluster (pkg/cluster's
	// Node): the API answers for the sessions of every node, and /metrics
	// adds the node's. Start takes it over: it is closed when Start fails,
	// at Shutdown and at Close.
	Cluster ClusterNode
	// Handover is how long Shutdown keeps handing the sessions over to the
	// nodes their clients come back to, after every stream got bye; zero
	// waits for none. Only with a Cluster.
	Handover time.Duration
	// Pprof, when set, serves net/http/pprof on this separate address
	// (e.g. "127.0.0.1:6060"), never on the public one.
	Pprof string
}

// An Instance is a running server: hub, API, cluster node (if any) and
// http.Server on a listener. Start makes one; Shutdown or Close stops it.
type Instance struct {
	hub      *broadcast.Hub
	node     ClusterNode // nil without a cluster
	srv      *http.Server
	debug    *http.Server // pprof; nil when off
	url      string
	addr     string
	log      *slog.Logger
	handover time.Duration

	wg       sync.WaitGroup // the Serve goroutines
	served   chan struct{}  // closed when srv's Serve returned
	serveErr error          // why Serve returned; set before served is closed
	// listenersClosed is closed by srv's shutdown hook: the listener is
	// closed, so the hub may end the streams without a client coming
	// straight back to this instance.
	listenersClosed chan struct{}

	stop    sync.Once // the first Shutdown or Close
	stopErr error     // its result, written inside stop
}

// Start builds a server in the order its parts need each other (hub, API,
// cluster node, listener) and serves it. ctx bounds the start only, not
// the server's life. If Start fails, it closes whatever it had started, and
// o.Cluster.
func Start(ctx context.Context, o Options) (in *Instance, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// undo closes what was started, the last started first.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if o.Cluster != nil {
		undo = append(undo, func() { _ = o.Cluster.Close() })
	}

	hubOpts := o.Hub
	if o.Logger != nil {
		hubOpts = append([]broadcast.Option{broadcast.WithLogger(o.Logger)}, hubOpts...)
	}
	if o.Cluster != nil {
		hubOpts = append(hubOpts[:len(hubOpts):len(hubOpts)], broadcast.WithSeed(o.Cluster.Seed()), broadcast.WithRelay(o.Cluster))
	}
	hub, err := broadcast.New(hubOpts...)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = hub.Close(context.Background()) })

	cfg := o.API
	if cfg.Logger == nil {
		cfg.Logger = o.Logger
	}
	api, err := newServer(hub, cfg, o.Cluster)
	if err != nil {
		return nil, err
	}
	if o.Cluster != nil {
		if err := o.Cluster.Start(hub, api); err != nil {
			return nil, err
		}
	}

	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { ln.Close() })
	var pln net.Listener
	if o.Pprof != "" {
		if pln, err = lc.Listen(ctx, "tcp", o.Pprof); err != nil {
			return nil, fmt.Errorf("pprof: %w", err)
		}
	}

	in = &Instance{
		hub: hub, node: o.Cluster, srv: newHTTPServer(api),
		addr: ln.Addr().String(), log: log, handover: o.Handover,
		served: make(chan struct{}), listenersClosed: make(chan struct{}),
	}
	in.srv.RegisterOnShutdown(func() { close(in.listenersClosed) })
	if o.Logger != nil {
		in.srv.ErrorLog = slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)
	}
	in.url = "http://" + in.addr
	if o.TLS != nil {
		in.srv.TLSConfig = o.TLS
		in.url = "https://" + in.addr
	}
	in.wg.Go(func() {
		defer close(in.served)
		if o.TLS != nil {
			in.serveErr = in.srv.ServeTLS(ln, "", "") // turns HTTP/2 on
		} else {
			in.serveErr = in.srv.Serve(ln)
		}
	})
	if pln != nil {
		in.debug = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		in.wg.Go(func() { _ = in.debug.Serve(pln) })
		log.Info("pprof", "url", "http://"+pln.Addr().String()+"/debug/pprof/")
	}
	chans := hub.Channels()
	published := 0
	for _, c := range chans {
		if c.Published() {
			published++
		}
	}
	log.Info("listening", "url", in.url+"/", "channels", len(chans),
		"published", published, "publish_tokens", len(cfg.PublishTokens))
	return in, nil
}

// URL is the server's base URL, "http://127.0.0.1:PORT" ("https://…" with
// TLS), without a trailing slash.
func (in *Instance) URL() string { return in.url }

// Addr is the address the server listens on, "127.0.0.1:PORT".
func (in *Instance) Addr() string { return in.addr }

// Hub is the server's hub.
func (in *Instance) Hub() *broadcast.Hub { return in.hub }

// Done is closed when the server stops serving: at Shutdown or Close, or
// when serving failed (Shutdown then returns why).
func (in *Instance) Done() <-chan struct{} { return in.served }

// Shutdown stops the server gracefully, as cmd/server does on SIGTERM: the
// listener closes, every stream gets bye and the requests under way finish;
// what is still open when ctx ends is cut. Then a cluster node hands the
// sessions over for at most Options.Handover and leaves the cluster. Only
// the first Shutdown or Close stops the server; later calls return its
// result.
func (in *Instance) Shutdown(ctx context.Context) error {
	in.stop.Do(func() { in.stopErr = in.shutdown(ctx) })
	return in.stopErr
}

func (in *Instance) shutdown(ctx context.Context) error {
	// Streams never go idle, so srv.Shutdown would wait for them forever:
	// closing the hub sends bye and lets their handlers return. It waits
	// for the listener to close first, so a client told bye finds this
	// server gone rather than still taking streams.
	hubClosed := make(chan error, 1)
	go func() {
		select {
		case <-in.listenersClosed:
		case <-ctx.Done():
		}
		hubClosed <- in.hub.Close(ctx)
	}()
	err := in.srv.Shutdown(ctx)
	if herr := <-hubClosed; err == nil {
		err = herr
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		in.srv.Close()
		err = fmt.Errorf("server: shutdown: %w", err)
	}
	<-in.served
	if serr := in.serveErr; err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	if in.node != nil {
		// The clients whose streams just ended come back through the load
		// balancer to other nodes, which take their sessions from here:
		// keep answering a while so they resume without a gap.
		hctx, cancel := context.WithTimeout(context.Background(), in.handover)
		left := in.node.Handover(hctx)
		cancel()
		in.log.Info("handover done", "sessions_left", left)
		if cerr := in.node.Close(); err == nil {
			err = cerr
		}
	}
	in.stopDebug()
	return err
}

// Close stops the server at once, as a crash would look to its clients and
// the other nodes: connections are cut (no bye), a cluster node leaves
// without handing anything over, and the hub closes. Only the first
// Shutdown or Close stops the server; later calls return its result.
func (in *Instance) Close() error {
	in.stop.Do(func() {
		err := in.srv.Close()
		<-in.served
		if in.node != nil {
			err = errors.Join(err, in.node.Close())
		}
		err = errors.Join(err, in.hub.Close(context.Background()))
		in.stopDebug()
		in.stopErr = err
	})
	return in.stopErr
}

// stopDebug closes the pprof server, if any, and waits for both Serve
// goroutines.
func (in *Instance) stopDebug() {
	if in.debug != nil {
		in.debug.Close()
	}
	in.wg.Wait()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A proxy spreads requests over the nodes round robin, with no stickiness
// at all: each new request, a POST as well as a GET /events, goes to the
// next live node. So a browser or the TUI pointed at the proxy has its
// stream on one node and its POSTs on the others, which is what the cluster
// must cope with behind any load balancer.
type proxy struct {
	nodes   []*node
	targets []*url.URL
	next    atomic.Uint64
	rp      *httputil.ReverseProxy
	tr      *http.Transport
}

// targetKey carries the chosen node's URL from ServeHTTP to Rewrite.
type targetKey struct{}

func newProxy(nodes []*node, log *slog.Logger) (*proxy, error) {
	p := &proxy{nodes: nodes}
	for _, n := range nodes {
		u, err := url.Parse(n.url)
		if err != nil {
			return nil, err
		}
		p.targets = append(p.targets, u)
	}
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.tr.MaxIdleConnsPerHost = 64
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(targetKey{}).(*url.URL))
			// Keep the browser's Host: the server checks a POST's Origin
			// against it.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: p.tr,
		// Write every event through at once: an SSE stream must not sit in
		// the proxy's buffer.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			log.Warn("proxy", "to", r.URL.Host, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusBadGateway, "node unreachable: "+err.Error())
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// ServeHTTP hands the request to the next node still running.
func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i, ok := p.pick()
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no node is running")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), targetKey{}, p.targets[i]))
	p.rp.ServeHTTP(w, r)
}

// pick returns the index of the next live node in round-robin order.
func (p *proxy) pick() (int, bool) {
	n := uint64(len(p.nodes))
	for range n {
		i := int((p.next.Add(1) - 1) % n)
		if p.nodes[i].alive() {
			return i, true
		}
	}
	return 0, false
}

// close drops the proxy's idle connections to the nodes.
func (p *proxy) close() { p.tr.CloseIdleConnections() }

// newProxyServer is the HTTP server in front of the proxy. No WriteTimeout:
// it would cut every stream.
func newProxyServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(protocol.Error{Error: msg})
}

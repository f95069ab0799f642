// Package server is xhrsse's HTTP API: the routes of docs/PROTOCOL.md over a
// broadcast.Hub, with their checks (origin, content type, body size) and
// their errors (JSON, with the right status). Start assembles a whole
// server around it (hub, API, cluster node, listener) and stops it again.
package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/web"
)

// Config holds the HTTP layer's settings. The zero value is usable.
type Config struct {
	// AllowOrigins lists foreign origins ("https://example.com") whose pages
	// may POST; it also turns on CORS for them.
	AllowOrigins []string
	// MaxBody limits a POST body in bytes; zero means protocol.DefaultMaxBody.
	MaxBody int64
	// RequestTimeout bounds reading and answering a request other than a
	// stream; zero means 30 s.
	RequestTimeout time.Duration
	// Logger receives request errors; nil logs nothing.
	Logger *slog.Logger
	// Static is the browser app; nil means the embedded web page.
	Static fs.FS
	// PublishTokens are the bearer tokens that may publish to published
	// channels; none turns publishing off (403). They are never logged.
	PublishTokens []string
	// PublishRate is each published channel's allowance in events a second
	// (bursts of a second's worth); zero means protocol.DefaultPublishRate.
	PublishRate float64
}

// A Server answers the xhrsse API for one hub. Its handlers are its methods.
type Server struct {
	hub     *broadcast.Hub
	cfg     Config
	log     *slog.Logger
	allowed map[string]bool
	mux     *http.ServeMux
	static  http.Handler
	staticF fs.FS
	metrics *metrics
	pub     *publisher
	cluster ClusterNode // nil: this hub's sessions only
}

// New returns the API for hub, alone: it answers for the hub's sessions
// only. Start assembles a whole server, in a cluster or not.
func New(hub *broadcast.Hub, cfg Config) (*Server, error) {
	return newServer(hub, cfg, nil)
}

// newServer returns the API for hub, answering for the sessions of the
// other nodes of node's cluster too if node is not nil.
func newServer(hub *broadcast.Hub, cfg Config, node ClusterNode) (*Server, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = protocol.DefaultMaxBody
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Static == nil {
		cfg.Static = web.Static()
	}
	s := &Server{
		hub: hub, cfg: cfg, log: cfg.Logger,
		allowed: make(map[string]bool),
		mux:     http.NewServeMux(),
		static:  http.FileServerFS(cfg.Static),
		staticF: cfg.Static,
		pub:     newPublisher(cfg),
		cluster: node,
	}
	for _, o := range cfg.AllowOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return nil, fmt.Errorf("server: allowed origin %q: want scheme://host[:port]", o)
		}
		s.allowed[strings.ToLower(o)] = true
	}
	reg := prometheus.NewRegistry()
	s.metrics = newMetrics(reg, hub)
	if node != nil {
		if err := registerAll(reg, node.Collectors()); err != nil {
			return nil, err
		}
	}

	routes := []struct {
		pattern string
		handler http.HandlerFunc
	}{
		{"GET /channels", s.channels},
		{"GET /files", s.files},
		{"GET /healthz", s.healthz},
		{"POST /sessions", s.createSession},
		{"GET /events", s.events},
		{"GET /sessions/{id}", s.getSession},
		{"POST /sessions/{id}/channels", s.tune},
		{"POST /sessions/{id}/chat", s.chat},
		{"POST /sessions/{id}/bulk", s.bulk},
	}
	allow := map[string][]string{}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		h := http.Handler(rt.handler)
		if method == http.MethodPost {
			h = s.post(path, h)
		} else if path != "/events" {
			h = s.quick(h)
		}
		s.mux.Handle(rt.pattern, h)
		allow[path] = append(allow[path], method)
	}
	// Publishing needs a token, not a page of this origin: no origin check,
	// and its body may stream for as long as the publisher sends. PUT is
	// POST's twin, for `curl -T -`, which streams standard input with PUT.
	s.mux.HandleFunc("POST /channels/{name}/events", s.publish)
	s.mux.HandleFunc("PUT /channels/{name}/events", s.publish)
	allow["/channels/{name}/events"] = []string{http.MethodPost, http.MethodPut}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	allow["/metrics"] = []string{http.MethodGet}
	for path, methods := range allow {
		s.mux.Handle("OPTIONS "+path, http.HandlerFunc(s.preflight))
		s.mux.Handle(path, methodNotAllowed(methods))
	}
	// One catch-all: a "GET /" pattern would conflict with the method-less
	// fallbacks above.
	s.mux.HandleFunc("/", s.page)
	return s, nil
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c := s.cluster; c != nil {
		w.Header().Set("X-Xhrsse-Node", c.Name())
	}
	s.mux.ServeHTTP(w, r)
}

// quick bounds a short request's reading and writing; streams set their own
// per-write deadlines instead (an http.Server WriteTimeout would cut them).
func (s *Server) quick(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(s.cfg.RequestTimeout)
		_ = rc.SetReadDeadline(deadline) // not supported on some writers: then the server's own limits apply
		_ = rc.SetWriteDeadline(deadline)
		h.ServeHTTP(w, r)
	})
}

// post wraps a POST handler: origin check, CORS, JSON content type, body
// limit, timing.
func (s *Server) post(route string, h http.Handler) http.Handler {
	return s.quick(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { s.metrics.observePost(route, time.Since(start)) }()
		if !s.checkOrigin(w, r) {
			return
		}
		if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
			if !isJSON(r.Header.Get("Content-Type")) {
				writeError(w, http.StatusUnsupportedMediaType, "body must be application/json")
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		h.ServeHTTP(w, r)
	}))
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// checkOrigin lets a POST through when it comes from no browser (no Origin,
// no Sec-Fetch-Site), from the server's own origin, or from an allowed one;
// otherwise it answers 403.
func (s *Server) checkOrigin(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "", "same-origin", "none":
			return true
		}
		writeError(w, http.StatusForbidden, "cross-site request refused")
		return false
	}
	if s.sameOrigin(origin, r) {
		return true
	}
	if s.allowed[strings.ToLower(origin)] {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
		return true
	}
	writeError(w, http.StatusForbidden, "origin "+origin+" is not allowed")
	return false
}

// sameOrigin compares hosts only: behind a TLS-terminating proxy the
// request's scheme is not the page's.
func (s *Server) sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// preflight answers a CORS preflight for an allowed foreign origin.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.allowed[strings.ToLower(origin)] {
		writeError(w, http.StatusForbidden, "origin "+origin+" is not allowed")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
}

// cors adds the CORS header to a GET answered to an allowed foreign origin.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && s.allowed[strings.ToLower(o)] {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	}
}

func methodNotAllowed(methods []string) http.Handler {
	allow := strings.Join(append(append([]string(nil), methods...), http.MethodOptions), ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; allowed: "+allow)
	})
}

// page serves the browser app, and JSON 404s for anything it does not have.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	if fi, err := fs.Stat(s.staticF, name); err != nil || fi.IsDir() {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", pagePolicy+"; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.static.ServeHTTP(w, r)
}

// pagePolicy is the page's Content-Security-Policy: the same as the meta
// tag of web/static/index.html, which keeps the page safe when its files are
// served by something else. frame-ancestors, which a meta tag cannot carry,
// is added to the header.
const pagePolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"

// errorStatus maps a hub error to its status and, for 429 and 503, a
// Retry-After in seconds.
func errorStatus(err error) (status int, retryAfter time.Duration) {
	var re *broadcast.RateError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &re):
		return http.StatusTooManyRequests, re.RetryAfter
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, 0
	case errors.Is(err, broadcast.ErrUnknownSession), errors.Is(err, broadcast.ErrUnknownChannel), errors.Is(err, broadcast.ErrUnknownFile):
		return http.StatusNotFound, 0
	case errors.Is(err, broadcast.ErrTooManySessions), errors.Is(err, broadcast.ErrTooManyStreams):
		return http.StatusServiceUnavailable, 5 * time.Second
	case errors.Is(err, broadcast.ErrClosed):
		return http.StatusServiceUnavailable, 2 * time.Second
	case errors.Is(err, broadcast.ErrSuperseded):
		return http.StatusConflict, 0
	case errors.Is(err, broadcast.ErrUnavailable):
		return http.StatusServiceUnavailable, time.Second
	case errors.Is(err, broadcast.ErrBulkTooLarge):
		return http.StatusRequestEntityTooLarge, 0
	case errors.Is(err, broadcast.ErrBadRequest), errors.Is(err, errBadJSON):
		return http.StatusBadRequest, 0
	}
	return http.StatusInternalServerError, 0
}

// fail answers err with its status; 500s are logged, since they are ours.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, retry := errorStatus(err)
	if retry > 0 {
		secs := int((retry + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", redactPath(r.URL.Path), "err", err)
		msg = "internal error"
	}
	writeError(w, status, msg)
}

// redactPath shortens a session id in a path, which must never be logged whole.
func redactPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "/sessions/"); ok {
		id, tail, _ := strings.Cut(rest, "/")
		return "/sessions/" + protocol.ShortID(id) + "/" + tail
	}
	return p
}

func registerAll(reg *prometheus.Registry, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("server: metrics: %w", err)
		}
	}
	return nil
}

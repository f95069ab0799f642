// Package testserver runs a real xhrsse server on 127.0.0.1 for tests, built
// by server.Start as cmd/server builds it.
package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// A Server is a running test server.
type Server struct {
	URL  string // "http://127.0.0.1:PORT" ("https://…" from StartTLS)
	Addr string // "127.0.0.1:PORT"
	Hub  *broadcast.Hub
	// Cert is the self-signed certificate of a StartTLS server, nil otherwise.
	Cert *x509.Certificate
	// Fingerprint is Cert's SHA-256, as cmd/server -tls-self-signed prints it.
	Fingerprint string

	t  testing.TB
	in *server.Instance
}

// Config changes the HTTP layer of a test server; see StartConfig.
type Config = server.Config

// Start runs a server with the hub options on a free loopback port and closes
// it when the test ends.
func Start(t testing.TB, opts ...broadcast.Option) *Server {
	t.Helper()
	return StartConfig(t, server.Config{}, opts...)
}

// StartConfig is Start with HTTP settings.
func StartConfig(t testing.TB, cfg server.Config, opts ...broadcast.Option) *Server {
	t.Helper()
	return StartAt(t, "127.0.0.1:0", cfg, opts...)
}

// StartAt is StartConfig on a given address, e.g. the Addr of a server that
// was closed, to test a restart.
func StartAt(t testing.TB, addr string, cfg server.Config, opts ...broadcast.Option) *Server {
	t.Helper()
	return start(t, addr, false, cfg, opts...)
}

// StartTLS is StartConfig over HTTPS with a self-signed certificate for
// 127.0.0.1, so HTTP/2 is on; Client trusts it.
func StartTLS(t testing.TB, cfg server.Config, opts ...broadcast.Option) *Server {
	t.Helper()
	return start(t, "127.0.0.1:0", true, cfg, opts...)
}

// Client returns an HTTP client for the server: for a StartTLS server it
// trusts the certificate and speaks HTTP/2.
func (s *Server) Client() *http.Client {
	if s.Cert == nil {
		return &http.Client{}
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.Cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr}
}

func start(t testing.TB, addr string, useTLS bool, cfg server.Config, opts ...broadcast.Option) *Server {
	t.Helper()
	o := server.Options{Addr: addr, API: cfg, Hub: opts}
	s := &Server{t: t}
	if useTLS {
		cert, fp, err := server.SelfSigned("127.0.0.1", "localhost")
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.Cert, s.Fingerprint = cert.Leaf, fp
	}
	var err error
	// A port just closed may linger briefly; retry a little.
	for range 50 {
		if s.in, err = server.Start(context.Background(), o); !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testserver: start on %s: %v", addr, err)
	}
	s.URL, s.Addr, s.Hub = s.in.URL(), s.in.Addr(), s.in.Hub()
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down the way SIGTERM does: every stream gets bye,
// in-flight requests finish. It is safe to call more than once.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A shutdown that timed out (a stream whose reader stopped) is the
	// test's business; a server that stopped serving on its own is not.
	if err := s.in.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.t.Errorf("testserver: %v", err)
	}
}

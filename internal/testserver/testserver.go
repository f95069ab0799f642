// Package testserver runs a real xhrsse server on 127.0.0.1 for tests: the
// same hub, handlers and http.Server settings as cmd/server.
package testserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// A Server is a running test server.
type Server struct {
	URL  string // "http://127.0.0.1:PORT"
	Addr string // "127.0.0.1:PORT"
	Hub  *broadcast.Hub

	srv  *http.Server
	done chan struct{}
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
	var ln net.Listener
	var err error
	// A port just closed may linger briefly; retry a little.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testserver: listen %s: %v", addr, err)
	}
	hub, err := broadcast.New(opts...)
	if err != nil {
		ln.Close()
		t.Fatalf("testserver: hub: %v", err)
	}
	api, err := server.New(hub, cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("testserver: server: %v", err)
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Hub: hub,
		srv:  server.HTTPServer(api, hub),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testserver: serve: %v", err)
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down the way SIGTERM does: every stream gets bye,
// in-flight requests finish. It is safe to call more than once.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx, s.srv, s.Hub)
	<-s.done
}

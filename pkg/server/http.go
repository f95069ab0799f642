package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// HTTPServer wraps h in an http.Server whose timeouts suit long-lived
// streams: headers must arrive quickly, but there is no ReadTimeout or
// WriteTimeout (either would cut every stream); quick requests get their own
// deadlines from the handlers and streams set one per write. Closing the
// server (Shutdown) closes hub, which ends every stream with bye.
func HTTPServer(h http.Handler, hub *broadcast.Hub) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext:       connContext,
	}
	srv.RegisterOnShutdown(func() {
		// Streams never go idle, so Shutdown would wait for them forever:
		// closing the hub sends bye and lets their handlers return.
		go hub.Close(context.Background())
	})
	return srv
}

// Shutdown stops srv gracefully: no new connections, every stream gets bye,
// in-flight requests finish; what is still open when ctx ends is closed.
func Shutdown(ctx context.Context, srv *http.Server, hub *broadcast.Hub) error {
	err := srv.Shutdown(ctx)
	if cerr := hub.Close(ctx); err == nil && cerr != nil {
		err = cerr
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		srv.Close()
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return err
}

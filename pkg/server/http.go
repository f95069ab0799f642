package server

import (
	"net/http"
	"time"
)

// newHTTPServer wraps h in an http.Server whose timeouts suit long-lived
// streams: headers must arrive quickly, but there is no ReadTimeout or
// WriteTimeout (either would cut every stream); quick requests get their own
// deadlines from the handlers and streams set one per write.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext:       connContext,
	}
}

package publish_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/publish"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// Refusals come back as *Error with the server's status, words and the
// count of events published before them.
func TestErrors(t *testing.T) {
	url, stop := startServer()
	defer stop()
	ctx := context.Background()

	bad := &publish.Publisher{URL: url, Token: "wrong"}
	var e *publish.Error
	if err := bad.Publish(ctx, "log", "x"); !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Message == "" {
		t.Fatalf("wrong token: %v", err)
	}

	p := &publish.Publisher{URL: url + "/", Token: "demo-token"}
	if err := p.Publish(ctx, "nope", "x"); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("unknown channel: %v", err)
	}
	n, err := p.Lines(ctx, "log", strings.NewReader("fine\nalso fine\nbad \xff\nnever\n"))
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Events != 2 || n != 2 {
		t.Fatalf("a bad line after two good ones: %d, %v", n, err)
	}
	if n, err := p.Lines(ctx, "log", strings.NewReader("a\n\nb")); err != nil || n != 2 {
		t.Fatalf("two lines and an empty one: %d, %v", n, err)
	}
}

// A publish beyond the channel's rate comes back as 429 with the server's
// Retry-After.
func TestRetryAfter(t *testing.T) {
	hub, err := broadcast.New(broadcast.WithChannels(
		broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true}))
	if err != nil {
		t.Fatal(err)
	}
	// One event every 100 s: the second publish is always too soon.
	api, err := server.New(hub, server.Config{PublishTokens: []string{"demo-token"}, PublishRate: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	defer ts.Close()
	defer hub.Close(context.Background())

	p := &publish.Publisher{URL: ts.URL, Token: "demo-token"}
	if err := p.Publish(t.Context(), "log", "first"); err != nil {
		t.Fatal(err)
	}
	var e *publish.Error
	if err := p.Publish(t.Context(), "log", "too soon"); !errors.As(err, &e) || e.Status != http.StatusTooManyRequests {
		t.Fatalf("second publish: %v, want 429", err)
	}
	if e.RetryAfter < time.Second || e.RetryAfter > 100*time.Second {
		t.Errorf("RetryAfter %v, want the header's wait for the next token (up to 100s)", e.RetryAfter)
	}
}

package publish_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/publish"
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

package ssetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A Reply is a whole non-streaming answer.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Client returns an HTTP client with a transport of its own, whose idle
// connections are closed when the test ends (goleak would see their
// goroutines).
func Client(t testing.TB) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// Do sends one request with the body as is (none if empty) and the headers
// given, within Wait, and returns the whole answer; no answer fails the test.
func Do(t testing.TB, hc *http.Client, method, url string, header http.Header, body string) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// PostJSON posts in as JSON, with the extra headers, and decodes a 2xx
// answer into out (if not nil). It returns the status, and an error for no
// answer, a 2xx answer it could not decode, or any other status (whose body
// the error holds).
func PostJSON(ctx context.Context, hc *http.Client, url string, header http.Header, in, out any) (int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: reading the answer: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("POST %s: answer %q: %w", url, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// MustPost is PostJSON within Wait that fails the test on an error.
func MustPost(t testing.TB, hc *http.Client, url string, in, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if _, err := PostJSON(ctx, hc, url, nil, in, out); err != nil {
		t.Fatal(err)
	}
}

// NewSession opens a session tuned to channels on the server at base,
// wanting a 201, and returns its id.
func NewSession(t testing.TB, hc *http.Client, base string, channels ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	var created protocol.SessionCreated
	st, err := PostJSON(ctx, hc, base+"/sessions", nil, protocol.CreateSession{Channels: channels}, &created)
	if err != nil {
		t.Fatal(err)
	}
	if st != http.StatusCreated || created.Session == "" {
		t.Fatalf("POST %s/sessions: %d %+v, want 201 and a session", base, st, created)
	}
	return created.Session
}

// WantError checks a refusal: its status, a JSON Content-Type and a body
// that is exactly {"error": non-empty}.
func WantError(t testing.TB, what string, r Reply, status int) {
	t.Helper()
	if e, ok := Refusal[protocol.Error](t, what, r, status); ok && e.Error == "" {
		t.Errorf("%s: body %q is not {\"error\": non-empty}", what, r.Body)
	}
}

// Refusal checks a refusal's status and JSON Content-Type, and decodes its
// body strictly as a T; a failed check is an error of the test, and false.
func Refusal[T any](t testing.TB, what string, r Reply, status int) (T, bool) {
	t.Helper()
	var v T
	if r.Status != status {
		t.Errorf("%s: status %d, want %d (body %s)", what, r.Status, status, r.Body)
		return v, false
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	v, err := strict[T](r.Body)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return v, false
	}
	return v, true
}

package ssetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// errorsTB records what a check reports with Errorf.
type errorsTB struct {
	testing.TB
	errs []string
}

func (e *errorsTB) Helper() {}
func (e *errorsTB) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

// TestWantError: a proper refusal passes; a wrong status, a plain-text body
// or an unknown field is reported.
func TestWantError(t *testing.T) {
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		name   string
		r      ssetest.Reply
		status int
		bad    string // in the report; empty: no report
	}{
		{"good", ssetest.Reply{Status: 404, Header: jsonHdr, Body: []byte(`{"error":"no"}`)}, 404, ""},
		{"status", ssetest.Reply{Status: 400, Header: jsonHdr, Body: []byte(`{"error":"no"}`)}, 404, "status 400"},
		{"text", ssetest.Reply{Status: 404, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("404 page not found")}, 404, "Content-Type"},
		{"empty", ssetest.Reply{Status: 404, Header: jsonHdr, Body: []byte(`{"error":""}`)}, 404, "non-empty"},
		{"unknown field", ssetest.Reply{Status: 404, Header: jsonHdr, Body: []byte(`{"error":"no","x":1}`)}, 404, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &errorsTB{TB: t}
			ssetest.WantError(rec, "the answer", tc.r, tc.status)
			got := strings.Join(rec.errs, "\n")
			if (tc.bad == "") != (got == "") || !strings.Contains(got, tc.bad) {
				t.Fatalf("reported %q, want a report with %q", got, tc.bad)
			}
		})
	}
}

// TestPostJSON: the body goes as JSON, a 2xx answer is decoded, any other
// comes back as its status and an error holding its body.
func TestPostJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Test") != "yes" {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/sessions" && string(b) == `{"channels":["one"]}` {
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"session":"abc","events":"/events?session=abc","channels":["one"]}`)
			return
		}
		http.Error(w, "refused: "+string(b), http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	hc := ssetest.Client(t)
	hdr := http.Header{"X-Test": {"yes"}}

	var created protocol.SessionCreated
	st, err := ssetest.PostJSON(context.Background(), hc, srv.URL+"/sessions", hdr, protocol.CreateSession{Channels: []string{"one"}}, &created)
	if err != nil || st != http.StatusCreated || created.Session != "abc" {
		t.Fatalf("POST /sessions: %d %+v %v", st, created, err)
	}
	st, err = ssetest.PostJSON(context.Background(), hc, srv.URL+"/other", hdr, map[string]int{"n": 1}, nil)
	if st != http.StatusForbidden || err == nil || !strings.Contains(err.Error(), `refused: {"n":1}`) {
		t.Fatalf("POST /other: %d %v", st, err)
	}
}

package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A goClient is the other side of the page in these tests: a plain net/http
// client that speaks the protocol by hand, so a chat typed in the browser can
// be seen arriving on a Go-read stream and the other way round.
type goClient struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func newGoClient(t testing.TB, base string) *goClient {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &goClient{t: t, base: base, hc: &http.Client{Transport: tr}}
}

// post sends a JSON body and decodes a 2xx answer into out.
func (c *goClient) post(path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding %s body: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("POST %s: reading answer: %w", path, err)
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, res.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("POST %s: decoding %s: %w", path, data, err)
		}
	}
	return nil
}

// get decodes the JSON answer of a GET into out.
func (c *goClient) get(path string, out any) {
	c.t.Helper()
	res, err := c.hc.Get(c.base + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s", path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

// A goStream is a session's SSE stream read with protocol.Decoder.
type goStream struct {
	session string
	events  chan protocol.Message
	cancel  context.CancelFunc
	done    chan struct{}
}

// openStream opens a session and reads its stream until the test ends.
func (c *goClient) openStream() *goStream {
	c.t.Helper()
	var created protocol.SessionCreated
	if err := c.post("/sessions", protocol.CreateSession{}, &created); err != nil {
		c.t.Fatal(err)
	}
	return c.attach(created.Session)
}

// attach reads the stream of an existing session until the test ends; the
// server hands the session to this newest stream.
func (c *goClient) attach(session string) *goStream {
	c.t.Helper()
	path := "/events?session=" + url.QueryEscape(session)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.hc.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("GET %s: %v", path, err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		cancel()
		c.t.Fatalf("GET %s: %s", path, res.Status)
	}
	s := &goStream{
		session: session,
		events:  make(chan protocol.Message, 256),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-s.done
		})
	}
	c.t.Cleanup(stop)
	// Runs in its own goroutine until the stream ends or the test cancels it.
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer res.Body.Close()
		dec := protocol.NewDecoder(res.Body, 1<<20)
		for {
			m, err := dec.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					c.t.Logf("go stream: %v", err)
				}
				return
			}
			select {
			case s.events <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

// waitChat returns the first chat event on s for which match is true.
func (s *goStream) waitChat(t testing.TB, match func(protocol.Chat) bool) protocol.Chat {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case m, ok := <-s.events:
			if !ok {
				t.Fatal("go stream ended before the chat arrived")
			}
			if m.Name != protocol.EventChat {
				continue
			}
			var c protocol.Chat
			if err := json.Unmarshal([]byte(m.Data), &c); err != nil {
				t.Fatalf("chat event %q: %v", m.Data, err)
			}
			if match(c) {
				return c
			}
		case <-timeout:
			t.Fatal("timed out waiting for the chat on the go stream")
		}
	}
}

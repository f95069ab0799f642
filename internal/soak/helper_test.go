package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// The helper process of TestIdleStreamsChat is this test binary run again
// with helperEnv set: it holds the client ends of the streams, so that their
// buffers and goroutines do not count in the server's heap.
const (
	helperEnv     = "XHRSSE_SOAK_HELPER"
	helperURL     = "XHRSSE_SOAK_URL"
	helperStreams = "XHRSSE_SOAK_STREAMS"
)

// A helper is the running helper process. It speaks in lines: it prints
// "ready" once every stream has its session event; told "until ID" it waits
// (at most wait) for chat ID on every stream and prints "reached"; told
// "report" it prints one "s INDEX COUNT FIRST LAST ORDERED" line a stream and
// "done", closes the streams and exits.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr ssetest.Buffer
}

// A streamReport is what one stream of the helper got: COUNT live chats,
// FIRST and LAST ids, ORDERED if each was the one before plus one.
type streamReport struct {
	count       int
	first, last int64
	ordered     bool
}

func startHelper(t *testing.T, url string, streams int) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command(os.Args[0], "-test.run=^$"), lines: make(chan string, 64)}
	h.cmd.Env = append(os.Environ(), helperEnv+"=streams", helperURL+"="+url, helperStreams+"="+strconv.Itoa(streams))
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(h.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		h.stdin.Close() // the helper exits when its stdin ends
		exited := make(chan struct{})
		go func() {
			for range h.lines {
			}
			<-done
			h.cmd.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(wait):
			h.cmd.Process.Kill()
			<-exited
		}
	})
	return h
}

// expect waits for a line.
func (h *helper) expect(want string, within time.Duration) error {
	deadline := time.After(within)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				return fmt.Errorf("helper exited before %q: %s", want, h.stderr.String())
			}
			if line == want {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("helper: no %q in %v", want, within)
		}
	}
}

// until waits until chat id has reached every stream (or the helper gave up
// waiting); the streams stay open.
func (h *helper) until(id int64) error {
	if _, err := fmt.Fprintf(h.stdin, "until %d\n", id); err != nil {
		return err
	}
	return h.expect("reached", 2*wait)
}

// report asks for every stream's record; the helper then closes them.
func (h *helper) report() ([]streamReport, error) {
	if _, err := fmt.Fprintln(h.stdin, "report"); err != nil {
		return nil, err
	}
	var out []streamReport
	deadline := time.After(2 * wait)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				return out, fmt.Errorf("helper exited before its report: %s", h.stderr.String())
			}
			if line == "done" {
				return out, nil
			}
			var i int
			var r streamReport
			if _, err := fmt.Sscanf(line, "s %d %d %d %d %t", &i, &r.count, &r.first, &r.last, &r.ordered); err != nil {
				return out, fmt.Errorf("helper said %q: %v", line, err)
			}
			out = append(out, r)
		case <-deadline:
			return out, fmt.Errorf("helper: no report in %v", 2*wait)
		}
	}
}

// streamsHelper is the helper process: it opens the streams (bare GET
// /events, each a new session), reads them, and answers as helper says.
func streamsHelper() int {
	url := os.Getenv(helperURL)
	n, err := strconv.Atoi(os.Getenv(helperStreams))
	if err != nil || url == "" {
		fmt.Fprintln(os.Stderr, "helper: bad environment")
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	recs := make([]streamReport, n)
	var (
		mu    sync.Mutex
		ready atomic.Int64
		wg    sync.WaitGroup
		fail  atomic.Value
	)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
			resp, err := hc.Do(req)
			if err != nil {
				fail.CompareAndSwap(nil, err.Error())
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fail.CompareAndSwap(nil, resp.Status)
				return
			}
			dec := protocol.NewDecoder(resp.Body, 1<<20)
			for {
				m, err := dec.Next()
				if err != nil {
					return
				}
				switch m.Name {
				case protocol.EventSession:
					ready.Add(1)
				case protocol.EventChat:
					var c protocol.Chat
					if json.Unmarshal([]byte(m.Data), &c) != nil || c.History {
						continue
					}
					mu.Lock()
					r := &recs[i]
					if r.count == 0 {
						r.first, r.ordered = c.ID, true
					} else if c.ID != r.last+1 {
						r.ordered = false
					}
					r.count++
					r.last = c.ID
					mu.Unlock()
				}
			}
		})
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for deadline := time.Now().Add(2 * wait); ready.Load() < int64(n); {
		if time.Now().After(deadline) || fail.Load() != nil {
			fmt.Fprintf(os.Stderr, "helper: %d of %d streams ready (%v)\n", ready.Load(), n, fail.Load())
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(out, "ready")
	out.Flush()

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if id, ok := strings.CutPrefix(in.Text(), "until "); ok {
			last, _ := strconv.ParseInt(id, 10, 64)
			for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				mu.Lock()
				all := true
				for _, r := range recs {
					all = all && r.last >= last
				}
				mu.Unlock()
				if all {
					break
				}
			}
			fmt.Fprintln(out, "reached")
			out.Flush()
			continue
		}
		if in.Text() == "report" {
			mu.Lock()
			for i, r := range recs {
				fmt.Fprintf(out, "s %d %d %d %d %t\n", i, r.count, r.first, r.last, r.ordered)
			}
			mu.Unlock()
			fmt.Fprintln(out, "done")
			out.Flush()
			break
		}
	}
	cancel()
	wg.Wait()
	return 0
}

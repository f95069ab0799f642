package baseline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a baseline with one fast channel on a loopback port.
func start(t *testing.T, kind string) string {
	t.Helper()
	ch := broadcast.DefaultChannels()[:1]
	ch[0].Rate = 50
	var (
		b   Server
		err error
	)
	switch kind {
	case "raw":
		b, err = NewRaw(ch...)
	case "raw-naive":
		b, err = NewRawNaive(ch...)
	default:
		b, err = NewR3labs(ch...)
	}
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		b.Close()
	})
	return "http://" + ln.Addr().String()
}

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestStream checks the protocol subset each baseline promises: the
// session event first at id 0, ticks of the tuned channel, a chat fanned
// out, ids 1, 2, 3, … after the session event.
func TestStream(t *testing.T) {
	for _, kind := range []string{"raw", "raw-naive", "r3labs"} {
		t.Run(kind, func(t *testing.T) {
			url := start(t, kind)
			resp, body := post(t, url+"/sessions", `{"channels":["one"]}`)
			var created protocol.SessionCreated
			if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &created) != nil || created.Session == "" {
				t.Fatalf("POST /sessions: %s %s", resp.Status, body)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+created.Events, nil)
			sresp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer sresp.Body.Close()
			dec := protocol.NewDecoder(bufio.NewReader(sresp.Body), 0)
			first, err := dec.Next()
			if err != nil || first.Name != protocol.EventSession || first.ID != "0" || !strings.Contains(first.Data, created.Session) {
				t.Fatalf("first event %+v, %v: want session at id 0", first, err)
			}
			if resp, body := post(t, url+"/sessions/"+created.Session+"/chat", `{"name":"ann","text":"hi"}`); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("chat: %s %s", resp.Status, body)
			}
			ticks, chats := 0, 0
			for want := 1; ticks < 5 || chats < 1; want++ {
				m, err := dec.Next()
				if err != nil {
					t.Fatalf("after %d ticks and %d chats: %v", ticks, chats, err)
				}
				if m.ID != itoa(want) {
					t.Fatalf("event %+v: want id %d", m, want)
				}
				switch m.Name {
				case "one":
					ticks++
				case protocol.EventChat:
					var c protocol.Chat
					if err := json.Unmarshal([]byte(m.Data), &c); err != nil || c.Name != "ann" || c.Text != "hi" {
						t.Fatalf("chat %q: %v", m.Data, err)
					}
					chats++
				default:
					t.Fatalf("unexpected event %+v", m)
				}
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestErrors(t *testing.T) {
	for _, kind := range []string{"raw", "raw-naive", "r3labs"} {
		t.Run(kind, func(t *testing.T) {
			url := start(t, kind)
			if resp, _ := post(t, url+"/sessions", `{"channels":["nope"]}`); resp.StatusCode != http.StatusNotFound {
				t.Errorf("unknown channel: %s, want 404", resp.Status)
			}
			if resp, _ := post(t, url+"/sessions/unknown/chat", `{"text":"x"}`); resp.StatusCode != http.StatusNotFound {
				t.Errorf("chat to unknown session: %s, want 404", resp.Status)
			}
			resp, err := http.Get(url + "/events?session=unknown")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("events of unknown session: %s, want 404", resp.Status)
			}
			_, body := post(t, url+"/sessions", `{}`)
			var created protocol.SessionCreated
			json.Unmarshal(body, &created)
			if resp, _ := post(t, url+"/sessions/"+created.Session+"/chat", `{"text":""}`); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("empty chat: %s, want 400", resp.Status)
			}
		})
	}
}

func TestBlob(t *testing.T) {
	url := start(t, "raw")
	for _, n := range []int{0, 1, protocol.BulkChunkSize + 7} {
		resp, err := http.Get(url + "/debug/blob?bytes=" + itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(b) != n {
			t.Errorf("blob of %d: %s, %d bytes, %v", n, resp.Status, len(b), err)
		}
	}
	resp, err := http.Get(url + "/debug/blob?bytes=-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("blob of -1 bytes: %s, want 400", resp.Status)
	}
}

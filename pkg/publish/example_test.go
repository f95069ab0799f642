package publish_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/publish"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// A server with the published channel "log", as `make run` starts one:
// xhrsse-server -channel log=Log, with XHRSSE_PUBLISH_TOKEN=demo-token.
func startServer() (url string, stop func()) {
	hub, err := broadcast.New(broadcast.WithChannels(
		broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true}))
	if err != nil {
		log.Fatal(err)
	}
	api, err := server.New(hub, server.Config{PublishTokens: []string{"demo-token"}})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(api)
	return ts.URL, func() {
		hub.Close(context.Background())
		ts.Close()
	}
}

// listen opens a stream tuned to "log" and prints the first n of its
// published events.
func listen(url string, n int) (done <-chan struct{}) {
	resp, err := http.Get(url + "/events")
	if err != nil {
		log.Fatal(err)
	}
	dec := protocol.NewDecoder(bufio.NewReader(resp.Body), 1<<20)
	first, err := dec.Next() // the session event names the session
	if err != nil {
		log.Fatal(err)
	}
	var session protocol.SessionEvent
	if err := json.Unmarshal([]byte(first.Data), &session); err != nil {
		log.Fatal(err)
	}
	tune, err := http.Post(url+"/sessions/"+session.Session+"/channels", "application/json", strings.NewReader(`{"channel":"log","on":true}`))
	if err != nil {
		log.Fatal(err)
	}
	tune.Body.Close()
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		for n > 0 {
			m, err := dec.Next()
			if err != nil {
				log.Fatal(err)
			}
			if m.Name == "log" {
				fmt.Printf("%s: %q\n", m.Name, m.Data)
				n--
			}
		}
	}()
	return ch
}

func Example() {
	url, stop := startServer()
	defer stop()
	done := listen(url, 3)

	ctx := context.Background()
	p := &publish.Publisher{URL: url, Token: "demo-token"}

	// One event, from a JSON body: line ends and all.
	if err := p.Publish(ctx, "log", "build started\nstep 1 of 2"); err != nil {
		log.Fatal(err)
	}
	// One event per line of a reader, each as soon as its line ends.
	n, err := p.Lines(ctx, "log", strings.NewReader("step 2 of 2\nbuild done\n"))
	if err != nil {
		log.Fatal(err)
	}
	<-done
	fmt.Println(n, "lines published")
	// Output:
	// log: "build started\nstep 1 of 2"
	// log: "step 2 of 2"
	// log: "build done"
	// 2 lines published
}

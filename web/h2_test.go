package web_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestPageOverHTTP2 serves the page over HTTPS (a self-signed certificate,
// accepted for the test as a user accepts cmd/server -tls-self-signed's)
// and checks that it works over HTTP/2: the EventSource and every fetch go
// over h2, and chat makes the round trip both ways with a Go client, also
// over HTTP/2.
func TestPageOverHTTP2(t *testing.T) {
	srv := testserver.StartTLS(t, testserver.Config{}, channelsAt(t, 20, 20, 20))
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	gc := &goClient{t: t, base: srv.URL, hc: hc}
	goSide := gc.openStream()

	p := openPageWith(t, srv.URL+"/", chromedp.Flag("ignore-certificate-errors", true))
	// The protocol of the stream's answer: the Network domain sees it. It is
	// on only for this, and the page reloads so that its stream opens anew.
	var (
		mu     sync.Mutex
		stream []string
	)
	if err := chromedp.Listen(p.ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.Contains(e.Response.URL, "/events?session=") {
			mu.Lock()
			stream = append(stream, e.Response.Protocol)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(p.ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Reload())
	p.waitFor("connected", connState("connected"))
	p.waitFor("channel one ticking", `Number(document.getElementById('ch-one-count').dataset.count) > 0`)
	if _, err := chromedp.Call(p.ctx, network.Disable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}

	// Go to page, page to Go.
	if err := gc.post("/sessions/"+goSide.session+"/chat", protocol.ChatPost{Name: "gopher", Text: "over h2"}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the Go client's chat in the page", chatShown("gopher", "over h2"))
	p.do(
		setInput("chat-name", "browser"),
		chromedp.SendKeys(chromedp.ID("chat-text"), "h2 from the page\r"),
	)
	goSide.waitChat(t, func(c protocol.Chat) bool { return c.Text == "h2 from the page" && c.Name == "browser" })

	mu.Lock()
	if len(stream) == 0 {
		t.Error("the page's stream answer was not seen")
	}
	for _, proto := range stream {
		if proto != "h2" {
			t.Errorf("the page's stream came over %q, want h2", proto)
		}
	}
	mu.Unlock()
	// Every fetch and file of the page (the navigation, app.js, GET
	// channels, POST sessions and chat, ...) went over h2 too.
	entries := eval[[]string](p, `performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
		.map((e) => e.nextHopProtocol + ' ' + e.name)`)
	var fetches int
	for _, e := range entries {
		proto, url, _ := strings.Cut(e, " ")
		if proto != "h2" {
			t.Errorf("%s came over %q, want h2", url, proto)
		}
		if strings.HasSuffix(url, "/sessions") || strings.HasSuffix(url, "/channels") {
			fetches++
		}
	}
	if fetches < 2 {
		t.Errorf("the page's timing entries %v lack its fetches", entries)
	}
	p.checkClean()
}

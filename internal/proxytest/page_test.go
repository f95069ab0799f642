package proxytest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/browsertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// openBrowserPage starts a headless Chromium on url, accepting the test's
// self-signed certificates, and closes it when the test ends.
func openBrowserPage(t testing.TB, url string) context.Context {
	t.Helper()
	ctx := browsertest.Start(t, nil, chromedp.Flag("ignore-certificate-errors", true))
	nctx, ncancel := context.WithTimeout(ctx, ssetest.Wait)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	return ctx
}

// pageWait polls a JavaScript boolean expression until it holds, failing the
// test with the page's connection log and errors if it does not in time.
func pageWait(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	ssetest.Eventually(t, what, func() error {
		cctx, cancel := context.WithTimeout(ctx, ssetest.Wait)
		defer cancel()
		ok, err := chromedp.Run(cctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		if err == nil && ok {
			return nil
		}
		return pageState{ctx}
	})
}

// pageState describes the page when printed: a wait's failure reads it
// then, not on every poll.
type pageState struct{ ctx context.Context }

func (p pageState) Error() string {
	cctx, cancel := context.WithTimeout(p.ctx, ssetest.Wait)
	defer cancel()
	state, _ := chromedp.Run(cctx, chromedp.Evaluate[string](`['conn-state', 'conn-history', 'app-error', 'channels-error', 'chat-error', 'bulk-status', 'bulk-error']
		.map((id) => id + ': ' + document.getElementById(id).textContent.trim()).join('\n')`))
	return "\n" + state
}

// TestPageThroughNginx opens the browser page through nginx run from
// deploy/nginx.conf, over HTTP/1.1 and over HTTPS with HTTP/2: it connects,
// switches a channel off (a POST the server accepts only because the
// example passes the Host on with its port), chats with a Go client both
// ways and fetches 1 MiB verified by its sha256, all through nginx.
func TestPageThroughNginx(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ng := startNginx(t, srv.Addr, nginxTweaks{})
	for _, tc := range []struct{ name, base, proto string }{
		{"http1.1", ng.URL, "http/1.1"},
		{"h2", ng.TLSURL, "h2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := openBrowserPage(t, tc.base+"/")
			pageWait(t, ctx, "connected", `document.getElementById('conn-state').dataset.state === 'connected'`)
			pageWait(t, ctx, "channel one ticking", `Number(document.getElementById('ch-one-count').dataset.count) > 0`)
			id := evalString(t, ctx, `document.getElementById('conn-session').dataset.session`)

			pageDo(t, ctx, chromedp.Click(chromedp.ID("ch-one-toggle")))
			pageWait(t, ctx, "channel one off", `document.getElementById('ch-one').dataset.on === 'false' &&
				document.getElementById('ch-one-toggle').getAttribute('aria-busy') === 'false'`)

			hc := ssetest.Client(t)
			if tc.name == "h2" {
				hc = ng.TLSClient(t)
			}
			goSide := openStream(t, hc, tc.base+"/events", nil)
			se, _ := goSide.Session(t)
			ssetest.MustPost(t, hc, tc.base+"/sessions/"+se.Session+"/chat", protocol.ChatPost{Name: "gopher", Text: "through " + tc.name}, nil)
			pageWait(t, ctx, "the Go client's chat in the page", fmt.Sprintf(
				`[...document.querySelectorAll('#chat-log .chat-text')].some((e) => e.textContent === %q)`, "through "+tc.name))
			pageDo(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
				document.getElementById('chat-name').value = 'browser';
				document.getElementById('chat-text').value = 'hello nginx';
				document.getElementById('chat-send').click();
			})()`))
			goSide.Until(t, "the page's chat", func(m protocol.Message) bool {
				return m.Name == protocol.EventChat && strings.Contains(m.Data, `"hello nginx"`)
			})

			pageDo(t, ctx,
				chromedp.SetValue(chromedp.ID("bulk-source"), "1048576"),
				chromedp.Click(chromedp.ID("bulk-start")),
			)
			pageWait(t, ctx, "the transfer verified", `document.getElementById('bulk-status').dataset.state === 'verified'`)

			if s, ok := srv.Hub.Session(id); !ok || strings.Contains(strings.Join(s.Channels(), ","), "one") {
				t.Errorf("the page's session is gone or still tuned to one")
			}
			protos := evalString(t, ctx, `[...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))].join(',')`)
			if protos != tc.proto {
				t.Errorf("the page's fetches went over %q, want %q", protos, tc.proto)
			}
		})
	}
}

func pageDo(t testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, ssetest.Wait)
	defer cancel()
	if err := chromedp.Do(cctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func evalString(t testing.TB, ctx context.Context, expr string) string {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, ssetest.Wait)
	defer cancel()
	s, err := chromedp.Run(cctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

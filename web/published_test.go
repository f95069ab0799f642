package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/publish"
)

const publishToken = "page-test-token"

// publish posts one event to a published channel over HTTP, as a backend
// would, and fails the test unless the server accepts it.
func (c *goClient) publish(channel, data string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p := &publish.Publisher{URL: c.base, Token: publishToken, Client: c.hc}
	if err := p.Publish(ctx, channel, data); err != nil {
		c.t.Fatalf("publish %q: %v", data, err)
	}
}

// feedLines is a JavaScript expression: the texts of a published channel's
// list, oldest first.
func feedLines(channel string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#ch-%s-lines .feed-line')].map((li) => li.textContent)`, channel)
}

// TestPagePublished opens the page on a server with a published channel
// beside the ticking ones: its card is there and on from the start, events
// published over HTTP show as lines (a multi-line event as its lines), and
// markup, escape sequences and bidi controls in them stay inert text.
func TestPagePublished(t *testing.T) {
	srv := testserver.StartConfig(t, testserver.Config{PublishTokens: []string{publishToken}},
		broadcast.WithChannels(append(broadcast.DefaultChannelsAt(5, 5, 5),
			broadcast.ChannelConfig{Name: "log", Title: "Build log", Published: true})...))
	gc := newGoClient(t, srv.URL)
	p := openPage(t, srv.URL+"/")
	p.waitFor("connected", connState("connected"))
	p.waitFor("the published card, on", `(() => {
		const c = document.getElementById('ch-log');
		return c !== null && c.dataset.kind === 'published' && c.dataset.on === 'true' &&
			document.getElementById('ch-log-title').textContent === 'Build log' &&
			document.getElementById('ch-log-lines') !== null &&
			document.getElementById('ch-one').dataset.kind === 'ticker';
	})()`)

	gc.publish("log", "build 42 started")
	gc.publish("log", "step 1\nstep 2")
	p.waitFor("the published lines", fmt.Sprintf(`JSON.stringify(%s) === %s`, feedLines("log"),
		js(`["build 42 started","step 1\nstep 2"]`)))
	if got := p.text("ch-log-count"); got != "2 events" {
		t.Errorf("counter says %q, want 2 events", got)
	}

	const evil = "<img src=x onerror=alert(1)> \x1b[31mred\x1b[0m \u202Eevil\u202C \u2066iso\u2069 \u200Fmark"
	gc.publish("log", evil)
	const shown = "<img src=x onerror=alert(1)> \uFFFD[31mred\uFFFD[0m \uFFFDevil\uFFFD \uFFFDiso\uFFFD \uFFFDmark"
	p.waitFor("the evil line shown inert", fmt.Sprintf(`%s.at(-1) === %s`, feedLines("log"), js(shown)))
	if n := eval[int](p, `document.querySelectorAll('#ch-log img, #ch-log-lines *:not(li)').length`); n != 0 {
		t.Errorf("the list has %d elements made from published text", n)
	}

	// Tuned out, the card takes no more lines; tuned in again, it does.
	p.do(chromedp.Click(chromedp.ID("ch-log-toggle")))
	p.waitFor("log off", `document.getElementById('ch-log').dataset.on === 'false'`)
	gc.publish("log", "while off")
	p.do(chromedp.Click(chromedp.ID("ch-log-toggle")))
	p.waitFor("log on", `document.getElementById('ch-log').dataset.on === 'true'`)
	gc.publish("log", "back on")
	p.waitFor("the line after tuning in", fmt.Sprintf(`%s.at(-1) === 'back on'`, feedLines("log")))
	if lines := eval[[]string](p, feedLines("log")); len(lines) != 4 {
		t.Errorf("lines %q: want the three before and the one after, nothing while off", lines)
	}

	// A long line without a space wraps inside the card, on a phone too.
	gc.publish("log", strings.Repeat("x", 400))
	p.waitFor("the long line", fmt.Sprintf(`%s.at(-1).length === 400`, feedLines("log")))
	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait))
	p.waitFor("a phone-sized layout", `window.innerWidth === 390`)
	overflow := eval[[]string](p, `(() => {
		const w = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > w) out.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
		for (const id of ['ch-log-toggle', 'ch-log-lines', 'ch-one-toggle']) {
			const r = document.getElementById(id).getBoundingClientRect();
			if (r.width <= 0 || r.left < 0 || r.right > w + 1) out.push(id + ' at ' + r.left + '..' + r.right);
		}
		const l = document.getElementById('ch-log-lines');
		if (l.scrollWidth > l.clientWidth + 1) out.push('the list scrolls sideways');
		return out;
	})()`)
	for _, o := range overflow {
		t.Errorf("phone layout: %s", o)
	}
	p.checkClean()
}

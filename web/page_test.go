package web_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fastChannels are the three default repertoires at test speed: one and two
// tick together so one can serve as the other's clock, three fills its box
// (2,000 characters) in a few seconds.
func fastChannels(t testing.TB) broadcast.Option {
	t.Helper()
	return channelsAt(t, 40, 40, 1000)
}

// channelsAt is the default channels at the given rates (ticks a second).
func channelsAt(t testing.TB, one, two, three float64) broadcast.Option {
	t.Helper()
	return broadcast.WithChannels(broadcast.DefaultChannelsAt(one, two, three)...)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func connState(state string) string {
	return fmt.Sprintf(`document.getElementById('conn-state').dataset.state === %s`, js(state))
}

// stableIDs are the elements the tests (and people's scripts) rely on.
var stableIDs = []string{
	"conn", "conn-state", "conn-session", "conn-reconnect", "conn-history", "app-error",
	"channels", "channels-error",
	"ch-one", "ch-one-title", "ch-one-toggle", "ch-one-text", "ch-one-count",
	"ch-two", "ch-two-toggle", "ch-two-text", "ch-two-count",
	"ch-three", "ch-three-toggle", "ch-three-text", "ch-three-count",
	"chat-log", "chat-form", "chat-name", "chat-text", "chat-send", "chat-error",
	"bulk-form", "bulk-source", "bulk-start", "bulk-progress", "bulk-bytes", "bulk-rate",
	"bulk-status", "bulk-download", "bulk-error",
}

// TestPageLoads opens the page, sees it connect and fill the three boxes
// from GET /channels, checks the boxes stay bounded, that the layout fits a
// phone, and that nothing went to the console.
func TestPageLoads(t *testing.T) {
	srv := testserver.Start(t, fastChannels(t))
	var channels []protocol.Channel
	newGoClient(t, srv.URL).get("/channels", &channels)
	p := openPage(t, srv.URL+"/")

	p.waitFor("connected", connState("connected"))
	for _, id := range stableIDs {
		if !eval[bool](p, fmt.Sprintf(`document.getElementById(%s) !== null`, js(id))) {
			t.Errorf("no element #%s", id)
		}
	}
	if got := eval[int](p, `document.querySelectorAll('#channels [data-testid=channel]').length`); got != len(channels) {
		t.Errorf("%d channel boxes, GET /channels has %d", got, len(channels))
	}
	for _, ch := range channels {
		if got := p.text("ch-" + ch.Name + "-title"); got != ch.Title {
			t.Errorf("channel %s title %q, want %q", ch.Name, got, ch.Title)
		}
		if got := eval[string](p, fmt.Sprintf(`document.getElementById('ch-%s').dataset.width`, ch.Name)); got != fmt.Sprint(ch.Width) {
			t.Errorf("channel %s width %s, want %d", ch.Name, got, ch.Width)
		}
		p.waitFor(ch.Name+" tuned in and ticking", fmt.Sprintf(
			`document.getElementById('ch-%[1]s-toggle').getAttribute('aria-pressed') === 'true' &&
			 document.getElementById('ch-%[1]s').dataset.on === 'true' &&
			 document.getElementById('ch-%[1]s-text').textContent.length > 0`, ch.Name))
	}
	if short := p.text("conn-session"); !regexp.MustCompile(`^[A-Za-z0-9_-]{8}…$`).MatchString(short) {
		t.Errorf("session shown as %q, want 8 characters and an ellipsis", short)
	}

	// Channel three outruns its box: the page keeps the last 2,000.
	p.waitFor("channel three past 2,200 characters", `Number(document.getElementById('ch-three-count').dataset.count) > 2200`)
	if n := eval[int](p, `document.getElementById('ch-three-text').textContent.length`); n > 2000 || n < 1900 {
		t.Errorf("channel three box holds %d code units, want the last 2,000 or close", n)
	}

	// A phone: nothing wider than the screen, every control on it.
	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait))
	p.waitFor("a phone-sized layout", `window.innerWidth === 390`)
	overflow := eval[[]string](p, `(() => {
		const w = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > w) out.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
		for (const id of ['ch-one-toggle', 'chat-text', 'chat-send', 'bulk-source', 'bulk-start', 'bulk-progress', 'conn-state']) {
			const r = document.getElementById(id).getBoundingClientRect();
			if (r.width <= 0 || r.left < 0 || r.right > w + 1) out.push(id + ' at ' + r.left + '..' + r.right);
		}
		return out;
	})()`)
	for _, o := range overflow {
		t.Errorf("phone layout: %s", o)
	}
	p.checkClean()
}

// TestChannelToggle turns a channel off and on from the page, and off again
// from outside (a POST with the session id), which the page learns from the
// tuned event.
func TestChannelToggle(t *testing.T) {
	srv := testserver.Start(t, fastChannels(t))
	p := openPage(t, srv.URL+"/")
	p.waitFor("connected", connState("connected"))
	p.waitFor("channel one ticking", `Number(document.getElementById('ch-one-count').dataset.count) > 0`)

	p.do(chromedp.Click(chromedp.ID("ch-one-toggle")))
	p.waitFor("channel one off", `document.getElementById('ch-one').dataset.on === 'false' &&
		document.getElementById('ch-one-toggle').getAttribute('aria-pressed') === 'false'`)
	// The POST's answer may overtake ticks already on the stream: let ten
	// ticks of channel two (same rate) go by before counting.
	settle := p.count("two")
	p.waitFor("10 ticks of channel two", fmt.Sprintf(`Number(document.getElementById('ch-two-count').dataset.count) >= %d`, settle+10))
	stopped := p.count("one")
	// 40 more ticks of channel two would have brought about 40 of channel
	// one's, had it still been on.
	clock := p.count("two")
	p.waitFor("40 ticks of channel two", fmt.Sprintf(`Number(document.getElementById('ch-two-count').dataset.count) >= %d`, clock+40))
	if got := p.count("one"); got != stopped {
		t.Errorf("channel one off, yet it went from %d to %d characters", stopped, got)
	}

	p.do(chromedp.Click(chromedp.ID("ch-one-toggle")))
	p.waitFor("channel one on and ticking again", fmt.Sprintf(`document.getElementById('ch-one').dataset.on === 'true' &&
		Number(document.getElementById('ch-one-count').dataset.count) > %d`, stopped))

	// Someone else (here a Go client holding the session id) tunes two out:
	// the page reconciles from the tuned event on its stream.
	id := eval[string](p, `document.getElementById('conn-session').dataset.session`)
	var tuned protocol.Tuned
	off := false
	if err := newGoClient(t, srv.URL).post("/sessions/"+id+"/channels", protocol.Tune{Channel: "two", On: &off}, &tuned); err != nil {
		t.Fatal(err)
	}
	p.waitFor("channel two shown off after the tuned event", `document.getElementById('ch-two').dataset.on === 'false' &&
		document.getElementById('ch-two-toggle').getAttribute('aria-pressed') === 'false' &&
		document.getElementById('ch-two-toggle').textContent === 'off'`)
	p.checkClean()
}

// chatShown is a JavaScript test for a chat line with exactly this name and
// text in the log.
func chatShown(name, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#chat-log .chat-msg')].some((li) =>
		li.querySelector('.chat-name').textContent === %s &&
		li.querySelector('.chat-text').textContent === %s &&
		li.querySelector('time.chat-at').textContent.length > 0)`, js(name), js(text))
}

// TestChat sends chat both ways between the page and a Go client, checks
// that markup in a message stays text and runs nothing, and that the
// server's 429 shows in the page.
func TestChat(t *testing.T) {
	// Each session may chat three times, and earns a new message only every
	// 100 s: the page's fourth message is refused, whatever the timing.
	srv := testserver.Start(t, fastChannels(t), broadcast.WithChatRate(0.01, 3))
	gc := newGoClient(t, srv.URL)
	// A chat from before the page opened arrives as history.
	if err := gc.post("/sessions/"+gc.openStream().session+"/chat", protocol.ChatPost{Name: "early", Text: "before you came"}, nil); err != nil {
		t.Fatal(err)
	}
	goSide := gc.openStream()
	p := openPage(t, srv.URL+"/")
	p.waitFor("connected", connState("connected"))
	p.waitFor("chat history", chatShown("early", "before you came")+
		` && document.querySelector('#chat-log .chat-msg').classList.contains('history')`)

	// Go to page.
	if err := gc.post("/sessions/"+goSide.session+"/chat", protocol.ChatPost{Name: "gopher", Text: "hello from go"}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the Go client's chat in the page", chatShown("gopher", "hello from go"))

	// Page to Go: type and press Enter.
	p.do(
		setInput("chat-name", "browser"),
		chromedp.SendKeys(chromedp.ID("chat-text"), "hello from the page\r"),
	)
	got := goSide.waitChat(t, func(c protocol.Chat) bool { return c.Text == "hello from the page" })
	if got.Name != "browser" {
		t.Errorf("chat from the page has name %q, want browser", got.Name)
	}
	p.waitFor("the input cleared after sending", `document.getElementById('chat-text').value === ''`)
	p.waitFor("the page's own chat in its log", chatShown("browser", "hello from the page"))

	// Markup is text: from another client, and typed in the page.
	const evil = `<img src=x onerror=alert(1)>`
	const evilName = `<b>bold</b>`
	if err := gc.post("/sessions/"+goSide.session+"/chat", protocol.ChatPost{Name: evilName, Text: evil}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the markup shown literally", chatShown(evilName, evil))
	const typed = `<script>alert(2)</script><svg onload=alert(3)>`
	p.do(chromedp.SendKeys(chromedp.ID("chat-text"), typed+"\r"))
	goSide.waitChat(t, func(c protocol.Chat) bool { return c.Text == typed })
	p.waitFor("typed markup shown literally", chatShown("browser", typed))
	if n := eval[int](p, `document.querySelectorAll('#chat-log img, #chat-log b, #chat-log script, #chat-log svg').length`); n != 0 {
		t.Errorf("the chat log has %d elements made from chat text", n)
	}

	// The third message from the page is the last the bucket allows; the
	// fourth comes back 429 and its error shows.
	p.do(chromedp.SendKeys(chromedp.ID("chat-text"), "three\r"))
	goSide.waitChat(t, func(c protocol.Chat) bool { return c.Text == "three" })
	p.waitFor("the input cleared", `document.getElementById('chat-text').value === ''`)
	p.do(chromedp.SendKeys(chromedp.ID("chat-text"), "four\r"))
	p.waitFor("the 429 in the page", `(() => {
		const e = document.getElementById('chat-error');
		return !e.hidden && e.textContent.startsWith('429: ') && /try again in \d+ s/.test(e.textContent);
	})()`)
	if v := eval[string](p, `document.getElementById('chat-text').value`); v != "four" {
		t.Errorf("a refused message should stay in the input, got %q", v)
	}
	p.checkClean() // also: no dialog opened
}

package web_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// historyAfter is a JavaScript test: the connection log, from line skip on,
// has the states in this order (others may come between).
func historyAfter(skip int, states ...string) string {
	return fmt.Sprintf(`(() => {
		const want = %s;
		const got = [...document.querySelectorAll('#conn-history li')].slice(%d).map((li) => li.dataset.state);
		let i = 0;
		for (const s of got) if (s === want[i]) i++;
		return i === want.length;
	})()`, jsList(states), skip)
}

func jsList(ss []string) string {
	b, err := json.Marshal(ss)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func historyLen(p *browserPage) int {
	return eval[int](p, `document.querySelectorAll('#conn-history li').length`)
}

// TestResumeAfterNetworkLoss cuts every connection between the browser and
// the server (a proxy drops them) in the middle of a bulk transfer, while
// the server keeps the session: the page shows reconnecting, EventSource
// comes back with Last-Event-ID, and the page shows resumed, same session,
// with a chat sent in the outage and the transfer completed and verified.
func TestResumeAfterNetworkLoss(t *testing.T) {
	// Mostly waiting out retry delays: let two of these wait together.
	t.Parallel()
	srv := testserver.Start(t, fastChannels(t))
	// 2 MB/s towards the browser: 5 MiB take over two seconds, time enough
	// to cut the line midway.
	proxy := soak.StartProxy(t, []string{srv.Addr}, soak.WithDownRate(2_000_000))
	p := openPage(t, proxy.URL()+"/")
	p.waitFor("connected", connState("connected"))
	p.waitFor("channel one ticking", `Number(document.getElementById('ch-one-count').dataset.count) > 0`)
	session := eval[string](p, `document.getElementById('conn-session').dataset.session`)
	before := historyLen(p)

	p.do(
		chromedp.SetValue(chromedp.ID("bulk-source"), "5242880"),
		chromedp.Click(chromedp.ID("bulk-start")),
	)
	p.waitFor("a tenth of the transfer", `document.getElementById('bulk-progress').value >= 0.1`)
	// Every connection reset, both sides, without an answer: what the
	// browser sees when the network goes away.
	if n := proxy.CutAll(soak.CutReset); n == 0 {
		t.Fatal("the proxy had no connection to drop")
	}
	if v := eval[float64](p, `document.getElementById('bulk-progress').value`); v >= 1 {
		t.Fatalf("the transfer finished (progress %v) before the line was cut; the test proves nothing", v)
	}
	// Sent while the page is cut off: the resumed stream must replay it.
	gc := newGoClient(t, srv.URL)
	if err := gc.post("/sessions/"+gc.openStream().session+"/chat", protocol.ChatPost{Name: "gopher", Text: "while you were away"}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("reconnecting, then resumed", historyAfter(before, "reconnecting", "resumed")+` && `+connState("resumed"))
	if got := eval[string](p, `document.getElementById('conn-session').dataset.session`); got != session {
		t.Errorf("session changed across a resume")
	}
	p.waitFor("the chat sent during the outage", chatShown("gopher", "while you were away"))
	waitBulkDone(t, p)
	count := p.count("one")
	p.waitFor("channel one ticking after the resume", fmt.Sprintf(`Number(document.getElementById('ch-one-count').dataset.count) > %d`, count))
	p.checkClean()
}

// TestNewSessionAfterRestart stops the server and starts a new one on the
// same address. The new server does not know the session, so the stream
// is refused (404) and the page opens a new session tuned to what the user
// had on.
func TestNewSessionAfterRestart(t *testing.T) {
	// Mostly waiting out retry delays: let two of these wait together.
	t.Parallel()
	srv := testserver.Start(t, fastChannels(t))
	p := openPage(t, srv.URL+"/")
	p.waitFor("connected", connState("connected"))
	p.do(chromedp.Click(chromedp.ID("ch-two-toggle")))
	p.waitFor("channel two off", `document.getElementById('ch-two').dataset.on === 'false'`)
	session := eval[string](p, `document.getElementById('conn-session').dataset.session`)
	before := historyLen(p)

	srv.Close()
	srv2 := testserver.StartAt(t, srv.Addr, testserver.Config{}, fastChannels(t))
	p.waitFor("reconnecting, then a new session", historyAfter(before, "reconnecting", "new-session")+` && `+connState("new-session"))
	if got := eval[string](p, `document.getElementById('conn-session').dataset.session`); got == session || got == "" {
		t.Errorf("session after the restart is %q, want a new one", got)
	}
	p.waitFor("the same channels tuned on the new session", `document.getElementById('ch-one').dataset.on === 'true' &&
		document.getElementById('ch-two').dataset.on === 'false' &&
		document.getElementById('ch-three').dataset.on === 'true'`)
	count := p.count("one")
	p.waitFor("channel one ticking from the new server", fmt.Sprintf(`Number(document.getElementById('ch-one-count').dataset.count) > %d`, count))
	if n := srv2.Hub.SessionCount(); n != 1 {
		t.Errorf("the new server has %d sessions, want the page's one", n)
	}
	p.checkClean()
}

// TestGapAfterLongOutage resumes after an outage longer than the server's
// tiny replay buffer holds: the stream says so with a gap event, and the
// page shows it.
func TestGapAfterLongOutage(t *testing.T) {
	// Mostly waiting out retry delays: let two of these wait together.
	t.Parallel()
	srv := testserver.Start(t, channelsAt(t, 20, 20, 200), broadcast.WithReplay(1, 0, 16))
	proxy := soak.StartProxy(t, []string{srv.Addr})
	p := openPage(t, proxy.URL()+"/")
	p.waitFor("connected", historyAfter(0, "connected"))
	p.waitFor("channel three ticking", `Number(document.getElementById('ch-three-count').dataset.count) > 0`)
	session := eval[string](p, `document.getElementById('conn-session').dataset.session`)
	before := historyLen(p)

	// Every connection reset, both sides, without an answer: what the
	// browser sees when the network goes away.
	if n := proxy.CutAll(soak.CutReset); n == 0 {
		t.Fatal("the proxy had no connection to drop")
	}
	// EventSource waits the server's retry (2 s) before it reconnects, in
	// which time channel three alone sends some 400 events.
	p.waitFor("reconnecting, then a gap", historyAfter(before, "reconnecting", "gap"))
	if got := eval[string](p, `[...document.querySelectorAll('#conn-history li[data-state=gap]')].pop().textContent`); !regexp.MustCompile(`gap \(\d+ events missed\)`).MatchString(got) {
		t.Errorf("gap shown as %q, want how many events were missed", got)
	}
	if got := eval[string](p, `document.getElementById('conn-session').dataset.session`); got != session {
		t.Errorf("session changed across a resume with a gap")
	}
	p.checkClean()
}

// TestReplacedStream attaches a second stream to the page's session: the
// page gets bye "replaced" and must stop, not reconnect and take the session
// back, until the user asks with the reconnect button.
func TestReplacedStream(t *testing.T) {
	// Mostly waiting out retry delays: let two of these wait together.
	t.Parallel()
	srv := testserver.Start(t, fastChannels(t))
	p := openPage(t, srv.URL+"/")
	p.waitFor("connected", connState("connected"))
	session := eval[string](p, `document.getElementById('conn-session').dataset.session`)

	other := newGoClient(t, srv.URL).attach(session)
	p.waitFor("replaced", connState("replaced")+` && !document.getElementById('conn-reconnect').hidden`)
	count := p.count("one")
	// The Go stream is the clock: 100 ticks of channel one are two and a
	// half seconds, more than EventSource's retry (2 s). Had the page reconnected, the
	// Go stream would have been replaced in turn and got bye.
	timeout := time.After(waitTimeout)
	for ticks := 0; ticks < 100; {
		select {
		case m, ok := <-other.events:
			if !ok {
				t.Fatal("the Go stream ended")
			}
			switch m.Name {
			case "one":
				ticks++
			case protocol.EventBye:
				t.Fatalf("the Go stream got bye %s: the page took its session back", m.Data)
			}
		case <-timeout:
			t.Fatal("timed out reading the Go stream")
		}
	}
	if got := p.count("one"); got != count {
		t.Errorf("the replaced page still gets characters: %d, then %d", count, got)
	}

	p.do(chromedp.Click(chromedp.ID("conn-reconnect")))
	p.waitFor("back on the stream", `['connected', 'resumed'].includes(document.getElementById('conn-state').dataset.state)`)
	p.waitFor("characters again", fmt.Sprintf(`Number(document.getElementById('ch-one-count').dataset.count) > %d`, count))
	p.checkClean()
}

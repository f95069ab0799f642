package web_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// role is the tab's part in sharing the stream: leader, follower or solo.
func role(p *browserPage) string {
	return eval[string](p, `document.getElementById('conn').dataset.role || ''`)
}

// allReceiving checks that every tab's count of channel name grows.
func allReceiving(t *testing.T, tabs []*browserPage, name string) {
	t.Helper()
	before := make([]int, len(tabs))
	for i, p := range tabs {
		before[i] = p.count(name)
	}
	for i, p := range tabs {
		p.waitFor(fmt.Sprintf("tab %d receiving channel %s", i, name),
			fmt.Sprintf(`Number(document.getElementById('ch-%s-count').dataset.count) > %d`, name, before[i]))
	}
}

// TestManyTabsShareOneStream opens eight tabs of the page in one browser over
// plain HTTP/1.1, where a browser keeps at most six connections to a host:
// had each tab its own stream, the seventh would hang. The tabs share one
// session and one stream instead, held by one leader tab. Every tab keeps
// receiving; a chat typed in one shows in all; a channel switched off in one
// tab stays on in the others; two tabs fetch bulk transfers at once and each
// verifies its own while a third sees none; and when the leader tab closes,
// another takes the stream over and every tab left keeps receiving.
func TestManyTabsShareOneStream(t *testing.T) {
	// Runs beside the tests that mostly wait out retry delays.
	t.Parallel()
	dir := t.TempDir()
	var files [2]string // hex sha256 of a.bin and b.bin
	for i, size := range []int{300_001, 700_003} {
		content := make([]byte, size)
		if _, err := rand.Read(content); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%c.bin", 'a'+i)), content, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		files[i] = hex.EncodeToString(sum[:])
	}
	srv := testserver.Start(t, channelsAt(t, 20, 20, 20), broadcast.WithFilesDir(dir))
	browser := newBrowser(t)
	const n = 8
	tabs := openTabs(t, browser, srv.URL+"/", n)
	leader := -1
	var followers []*browserPage
	for i, p := range tabs {
		p.waitFor(fmt.Sprintf("tab %d connected", i), connState("connected"))
		switch r := role(p); r {
		case "leader":
			if leader >= 0 {
				t.Fatalf("tabs %d and %d both lead", leader, i)
			}
			leader = i
		case "follower":
			followers = append(followers, p)
		default:
			t.Fatalf("tab %d has role %q", i, r)
		}
	}
	if leader < 0 {
		t.Fatal("no tab leads")
	}
	ssetest.Eventually(t, "one stream and one session for the eight tabs", func() bool {
		return srv.Hub.StreamCount() == 1 && srv.Hub.SessionCount() == 1
	})
	session := eval[string](tabs[0], `document.getElementById('conn-session').dataset.session`)
	for i, p := range tabs {
		if got := eval[string](p, `document.getElementById('conn-session').dataset.session`); got != session {
			t.Errorf("tab %d shows session %q, tab 0 %q", i, got, session)
		}
	}
	allReceiving(t, tabs, "one")
	allReceiving(t, tabs, "three")

	// A chat typed in a follower shows in all tabs.
	followers[1].do(
		setInput("chat-name", "follower"),
		chromedp.SendKeys(chromedp.ID("chat-text"), "hello from a follower\r"),
	)
	for i, p := range tabs {
		p.waitFor(fmt.Sprintf("the chat in tab %d", i), chatShown("follower", "hello from a follower"))
	}

	// Channel one off in one follower only.
	toggler := followers[0]
	toggler.do(chromedp.Click(chromedp.ID("ch-one-toggle")))
	toggler.waitFor("channel one off in the tab that switched it", `document.getElementById('ch-one').dataset.on === 'false' &&
		document.getElementById('ch-one-toggle').getAttribute('aria-pressed') === 'false'`)
	stopped := toggler.count("one")
	clock := toggler.count("two")
	toggler.waitFor("20 ticks of channel two", fmt.Sprintf(`Number(document.getElementById('ch-two-count').dataset.count) >= %d`, clock+20))
	if got := toggler.count("one"); got != stopped {
		t.Errorf("a tab switched channel one off, yet it went from %d to %d characters", stopped, got)
	}
	var others []*browserPage
	for i, p := range tabs {
		if p == toggler {
			continue
		}
		others = append(others, p)
		if on := eval[string](p, `document.getElementById('ch-one').dataset.on + document.getElementById('ch-one-toggle').getAttribute('aria-pressed')`); on != "truetrue" {
			t.Errorf("another tab's toggle changed the view of tab %d: channel one shows %s", i, on)
		}
	}
	allReceiving(t, others, "one")

	// Two followers fetch a file each at once; each verifies its own, a
	// third sees nothing of either. (Files, because generated data of two
	// sizes is one stream's prefixes: the hashes would not tell a mix-up.)
	for i, p := range followers[2:4] {
		name := fmt.Sprintf("file:%c.bin", 'a'+i)
		p.waitFor("the file "+name+" in the list", fmt.Sprintf(`document.querySelector('#bulk-source option[value=%q]') !== null`, name))
		p.do(
			chromedp.SetValue(chromedp.ID("bulk-source"), name),
			chromedp.Click(chromedp.ID("bulk-start")),
		)
	}
	ids := map[string]bool{}
	for i, p := range followers[2:4] {
		waitBulkDone(t, p)
		type transfer struct {
			ID     string `json:"id"`
			SHA256 string `json:"sha256"`
		}
		got := eval[transfer](p, `({ id: document.getElementById('bulk-status').dataset.transfer,
			sha256: document.getElementById('bulk-status').dataset.sha256 })`)
		if got.SHA256 != files[i] || ids[got.ID] {
			t.Errorf("the tab that fetched file %c verified transfer %s with sha256 %s, want its own file's %s", 'a'+i, got.ID, got.SHA256, files[i])
		}
		ids[got.ID] = true
	}
	if st := eval[string](followers[4], `document.getElementById('bulk-status').dataset.state`); st != "idle" {
		t.Errorf("a tab that asked for nothing has its bulk panel say %s", st)
	}

	// Close the leader: another tab takes the stream over.
	tabs[leader].checkClean()
	tabs[leader].close()
	rest := followers
	ssetest.Eventually(t, "a new leader's stream", func() bool {
		leaders := 0
		for _, p := range rest {
			if role(p) == "leader" {
				leaders++
			}
		}
		return leaders == 1 && srv.Hub.StreamCount() == 1
	})
	allReceiving(t, rest, "three")
	allReceiving(t, rest[1:], "one")
	if on := eval[string](toggler, `document.getElementById('ch-one').dataset.on`); on != "false" {
		t.Errorf("the tab that switched channel one off shows it %s after the handover, want its own choice kept", on)
	}
	rest[len(rest)-1].do(
		setInput("chat-name", "last"),
		chromedp.SendKeys(chromedp.ID("chat-text"), "after the leader left\r"),
	)
	for i, p := range rest {
		p.waitFor(fmt.Sprintf("the second chat in tab %d", i), chatShown("last", "after the leader left"))
		if got := eval[string](p, `document.getElementById('conn-session').dataset.session`); got != session {
			t.Errorf("a tab moved to session %q after the leader closed, want %q resumed", got, session)
		}
	}
	if srv.Hub.SessionCount() != 1 {
		t.Errorf("%d sessions after the handover, want the one", srv.Hub.SessionCount())
	}
	for _, p := range rest {
		p.checkClean()
	}
}

// TestPageWithoutWebLocks runs the page where the browser has no Web Locks,
// as on a plain-http origin other than localhost (Web Locks exist only in
// secure contexts): the page keeps a stream of its own, as before tabs
// shared one, and everything works.
func TestPageWithoutWebLocks(t *testing.T) {
	srv := testserver.Start(t, channelsAt(t, 40, 40, 40))
	p := openPage(t, srv.URL+"/")
	if _, err := chromedp.Call(p.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `Object.defineProperty(Navigator.prototype, 'locks', { get() { return undefined; } });`,
	}); err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Reload())
	p.waitFor("connected", connState("connected"))
	if r := role(p); r != "solo" {
		t.Fatalf("role %q without Web Locks, want solo", r)
	}
	if !eval[bool](p, `navigator.locks === undefined && document.getElementById('conn-tabs').hidden`) {
		t.Error("Web Locks still there, or the sharing line shown")
	}
	p.waitFor("channel one ticking", `Number(document.getElementById('ch-one-count').dataset.count) > 0`)
	p.do(chromedp.Click(chromedp.ID("ch-one-toggle")))
	p.waitFor("channel one off", `document.getElementById('ch-one').dataset.on === 'false'`)
	session := eval[string](p, `document.getElementById('conn-session').dataset.session`)
	ssetest.Eventually(t, "the session tuned out of one", func() bool {
		s, ok := srv.Hub.Session(session)
		if !ok {
			return false
		}
		for _, c := range s.Channels() {
			if c == "one" {
				return false
			}
		}
		return true
	})
	p.do(
		setInput("chat-name", "solo"),
		chromedp.SendKeys(chromedp.ID("chat-text"), "no locks here\r"),
	)
	p.waitFor("the chat", chatShown("solo", "no locks here"))
	p.checkClean()
}

// sessionChannels returns the channels the server has the session tuned to.
func sessionChannels(t *testing.T, srv *testserver.Server, id string) []string {
	t.Helper()
	s, ok := srv.Hub.Session(id)
	if !ok {
		t.Fatalf("the server does not know session %s", id)
	}
	return s.Channels()
}

// TestTabsTuneTheUnion checks the shared session's tuning from the server's
// side: it carries a channel while any open tab shows it, drops it when the
// last tab switches it off, and drops what only a tab that closed wanted.
func TestTabsTuneTheUnion(t *testing.T) {
	srv := testserver.Start(t, channelsAt(t, 20, 20, 20))
	browser := newBrowser(t)
	a := openTab(t, browser, srv.URL+"/")
	a.waitFor("tab a connected", connState("connected"))
	b := openTab(t, browser, srv.URL+"/")
	b.waitFor("tab b connected", connState("connected"))
	if role(a) != "leader" || role(b) != "follower" {
		t.Fatalf("roles %q and %q, want leader and follower", role(a), role(b))
	}
	id := eval[string](a, `document.getElementById('conn-session').dataset.session`)
	toggleOff := func(p *browserPage, name, who string) {
		t.Helper()
		p.do(chromedp.Click(chromedp.ID("ch-" + name + "-toggle")))
		p.waitFor(name+" off in tab "+who, fmt.Sprintf(`document.getElementById('ch-%[1]s').dataset.on === 'false' &&
			document.getElementById('ch-%[1]s-toggle').getAttribute('aria-busy') === 'false'`, name))
	}
	has := func(name string) bool { return slices.Contains(sessionChannels(t, srv, id), name) }

	toggleOff(b, "one", "b")
	toggleOff(a, "two", "a")
	if !has("one") || !has("two") {
		t.Errorf("the session has %v after each tab switched off a channel the other shows, want all three", sessionChannels(t, srv, id))
	}
	toggleOff(b, "two", "b")
	ssetest.Eventually(t, "two tuned out once no tab shows it", func() bool { return !has("two") })

	// Only a shows one: when a closes, b (now leading) tunes it out.
	a.checkClean()
	a.close()
	b.waitFor("tab b leading", `document.getElementById('conn').dataset.role === 'leader'`)
	ssetest.Eventually(t, "one tuned out after the only tab showing it closed", func() bool { return !has("one") })
	if got := sessionChannels(t, srv, id); !slices.Equal(got, []string{"three"}) {
		t.Errorf("the session has %v, want [three], what tab b shows", got)
	}
	allReceiving(t, []*browserPage{b}, "three")
	b.checkClean()
}

package web_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestPageThroughCluster: the page behind a round-robin front over three
// nodes (no stickiness), as `make cluster` serves it: it loads, connects and
// ticks while its POSTs land on other nodes than its stream; chat crosses
// nodes both ways; and when the node holding its stream is killed, the page
// comes back on another node after a gap, still tuned, and chat still works.
func TestPageThroughCluster(t *testing.T) {
	b := clustertest.StartBroker(t)
	nodes := clustertest.StartNodes(t, b, "a", "b", "c")
	targets := make([]string, len(nodes))
	for i, n := range nodes {
		targets[i] = n.Addr
	}
	front, err := soak.NewProxy(targets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })

	p := openPage(t, front.URL()+"/")
	p.waitFor("connected", connState("connected"))
	p.waitFor("one ticking", `document.getElementById('ch-one-text').textContent.length > 3`)
	p.do(chromedp.Click(chromedp.ID("ch-two-toggle"))) // a tune POST, on some node
	p.waitFor("two off", `document.getElementById('ch-two').dataset.on === 'false'`)

	// Which node holds the page's stream, and a Go client on another.
	pageNode := -1
	for i, n := range nodes {
		if n.Hub.StreamCount() > 0 {
			pageNode = i
		}
	}
	if pageNode < 0 {
		t.Fatal("no node holds the page's stream")
	}
	other := nodes[(pageNode+1)%len(nodes)]
	gc := newGoClient(t, other.URL)
	goSide := gc.openStream()
	if err := gc.post("/sessions/"+goSide.session+"/chat", protocol.ChatPost{Name: "gopher", Text: "from " + other.Name()}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("a chat from another node in the page", chatShown("gopher", "from "+other.Name()))
	p.do(setInput("chat-name", "browser"), chromedp.SendKeys(chromedp.ID("chat-text"), "through the front\r"))
	goSide.waitChat(t, func(c protocol.Chat) bool { return c.Text == "through the front" })

	// The page's node dies: the page carries on elsewhere, channel two
	// still off, one still ticking.
	nodes[pageNode].Kill()
	// The page resumes on another node, which had none of the lost node's
	// history: a gap, as PROTOCOL.md promises. (Chat sent between the loss
	// and the resume is part of what the gap covers: the chat below is
	// sent after it.)
	p.waitFor("resumed after a gap", `document.getElementById('conn-history').textContent.includes('gap')`)
	before := eval[int](p, `Number(document.getElementById('ch-one-count').dataset.count)`)
	p.waitFor("one ticking again", fmt.Sprintf(`Number(document.getElementById('ch-one-count').dataset.count) > %d`, before+3))
	if on := eval[string](p, `document.getElementById('ch-two').dataset.on`); on != "false" {
		t.Errorf("channel two is on=%s after the move, want still off", on)
	}
	if err := gc.post("/sessions/"+goSide.session+"/chat", protocol.ChatPost{Name: "gopher", Text: "after the loss"}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitFor("chat after the loss", chatShown("gopher", "after the loss"))
}

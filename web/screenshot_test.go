package web_test

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestScreenshot takes a picture of the page at work: channels streaming,
// a chat going, a bulk transfer verified. With XHRSSE_SCREENSHOT set to a
// path it writes the PNG there (the docs' screenshot is made this way);
// without it, it still checks that a real PNG came out.
func TestScreenshot(t *testing.T) {
	srv := testserver.Start(t, channelsAt(t, 100, 100, 300))
	gc := newGoClient(t, srv.URL)
	p := openPage(t, srv.URL+"/")
	p.waitFor("connected", connState("connected"))

	lines := []protocol.ChatPost{
		{Name: "ann", Text: "is anyone else watching channel two?"},
		{Name: "bob", Text: "yes, ideographs at full speed 🎉"},
		{Name: "ann", Text: "<b>markup</b> stays text, as it should"},
	}
	s := gc.openStream()
	for _, c := range lines {
		if err := gc.post("/sessions/"+s.session+"/chat", c, nil); err != nil {
			t.Fatal(err)
		}
	}
	p.do(
		setInput("chat-name", "you"),
		chromedp.SendKeys(chromedp.ID("chat-text"), "hello from the browser\r"),
		chromedp.SetValue(chromedp.ID("bulk-source"), "5242880"),
		chromedp.Click(chromedp.ID("bulk-start")),
	)
	waitBulkDone(t, p)
	p.waitFor("the chat shown", chatShown("you", "hello from the browser"))
	p.waitFor("boxes full", `[...document.querySelectorAll('.channel-text')].every((e) => e.textContent.length >= 150)`)

	img := screenshot(t, p)
	if path := os.Getenv("XHRSSE_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatalf("writing the screenshot: %v", err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(img))
	}
	p.checkClean()
}

// screenshot captures the whole page as PNG and checks that it decodes to a
// picture of the page's size.
func screenshot(t *testing.T, p *browserPage) []byte {
	t.Helper()
	img, err := chromedpRun(p, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if cfg.Width < 800 || cfg.Height < 400 {
		t.Fatalf("screenshot is %dx%d, want the page at 1280 wide", cfg.Width, cfg.Height)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("screenshot does not decode: %v", err)
	}
	return img
}

func chromedpRun[T any](p *browserPage, a chromedp.Action[T]) (T, error) {
	ctx, cancel := contextWithTimeout(p)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		return v, fmt.Errorf("%w\n%s", err, p.state())
	}
	return v, nil
}

// Package browsertest starts the headless Chromium of the project's browser
// tests: where to find it, the flags it needs on a machine with no network
// but loopback, and Start, which runs one for the length of a test.
package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path finds Chromium, failing the test (never skipping it) with what to
// install when it is missing: CI installs it, so a missing browser is a
// broken machine, not a reason to pass.
func Path(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found at /usr/bin/chromium nor as chromium, chromium-browser or google-chrome on PATH; " +
		"install it (Debian: apt-get update && apt-get install -y chromium, as .ci/run does) to run the browser tests")
	return ""
}

// Options are the flags of every test browser, then extra: headless, a
// fresh profile, nothing that reaches for the network in the background
// (refused here, and noisy), and no throttling of tabs in the background,
// which would slow the tabs a test watches.
func Options(t testing.TB, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.WindowSize(1280, 900),
	}
	return append(opts, extra...)
}

// Start starts a headless Chromium with Options(t, extra...) and returns the
// context of its first tab, blank; listen, if not nil, gets that tab's
// events. The browser goes when the test ends.
func Start(t testing.TB, listen func(ev any), extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	actx, acancel := chromedp.NewExecAllocator(context.Background(), Options(t, extra...)...)
	var opts []chromedp.ContextOption
	if listen != nil {
		opts = append(opts, chromedp.WithListener(listen))
	}
	ctx, cancel := chromedp.NewContext(actx, opts...)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		acancel()
	})
	// The first run starts the browser and ties it to its context: ctx, not
	// a context with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", Path(t), err)
	}
	return ctx
}

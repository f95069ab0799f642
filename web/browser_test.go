package web_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/browsertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
)

// waitTimeout bounds every wait in these tests, as it does the toolkit's.
const waitTimeout = ssetest.Wait

// chromiumPath finds the browser; see browsertest.Path.
func chromiumPath(t testing.TB) string { return browsertest.Path(t) }

// A browserPage is one headless Chromium with one tab. It records what would
// show in the DevTools console as a problem: console.error and console.assert
// calls, uncaught exceptions, browser log errors other than failed network
// requests (a 404 or 429 that the page expects and shows is not a bug), and
// any JavaScript dialog, which it dismisses.
type browserPage struct {
	t        testing.TB
	ctx      context.Context
	closeTab context.CancelFunc // a tab of newBrowser's only

	mu       sync.Mutex
	problems []string
	dialogs  []string
}

// openPage starts a browser, opens url and waits for the load event. The
// browser, its tab and its profile directory go when the test ends.
func openPage(t testing.TB, url string) *browserPage {
	t.Helper()
	return openPageWith(t, url)
}

// openPageWith is openPage with extra browser flags.
func openPageWith(t testing.TB, url string, extra ...chromedp.ExecAllocatorOption) *browserPage {
	t.Helper()
	p := &browserPage{t: t}
	p.ctx = browsertest.Start(t, p.listen, extra...)
	p.start(url)
	return p
}

// start brings up the tab of p.ctx (a new tab of a running browser is made
// here) and opens url in it.
func (p *browserPage) start(url string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx); err != nil {
		p.t.Fatalf("starting %s: %v", chromiumPath(p.t), err)
	}
	// The Network domain would copy every SSE message (bulk chunks too) to
	// this process; nothing here reads it.
	if _, err := chromedp.Call(p.ctx, network.Disable, cdp.Empty{}); err != nil {
		p.t.Fatalf("network.disable: %v", err)
	}
	p.do(chromedp.Navigate(url))
}

// newBrowser starts a browser whose first tab stays blank, for tests that
// open several tabs of the page with openTab: they share one profile, as the
// tabs of one person's browser do (storage, locks, the connections to a
// host). The browser goes when the test ends.
func newBrowser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	return browsertest.Start(t, nil, extra...)
}

// openTab opens url in a new tab (a window of its own, so that it is visible
// and draws) of the browser from newBrowser. The tab closes when the test
// ends, or earlier with close.
func openTab(t testing.TB, browser context.Context, url string) *browserPage {
	t.Helper()
	p := &browserPage{t: t}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(p.listen))
	p.ctx = ctx
	p.closeTab = cancel
	t.Cleanup(cancel)
	p.start(url)
	return p
}

// openTabs opens url in n new tabs of the browser at once (opening them one
// after another takes seconds each on a busy machine).
func openTabs(t testing.TB, browser context.Context, url string, n int) []*browserPage {
	t.Helper()
	tabs := make([]*browserPage, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range tabs {
		p := &browserPage{t: t}
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(p.listen))
		p.ctx, p.closeTab = ctx, cancel
		t.Cleanup(cancel)
		tabs[i] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = chromedp.Do(ctx)
			if errs[i] == nil {
				_, errs[i] = chromedp.Call(ctx, network.Disable, cdp.Empty{})
			}
			if errs[i] == nil {
				nctx, ncancel := context.WithTimeout(ctx, waitTimeout)
				errs[i] = chromedp.Do(nctx, chromedp.Navigate(url))
				ncancel()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("opening tab %d: %v", i, err)
		}
	}
	return tabs
}

// close closes a tab from openTab, as a person closing it does.
func (p *browserPage) close() {
	p.t.Helper()
	if err := chromedp.Cancel(p.ctx); err != nil && !errors.Is(err, context.Canceled) {
		p.t.Fatalf("closing the tab: %v", err)
	}
	p.closeTab()
}

// listen runs in the tab's read loop: it must be quick and run no command.
func (p *browserPage) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			p.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		p.problem("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		if e.Level == cdplog.EntryLevelError && e.Source != cdplog.EntrySourceNetwork {
			p.problem("browser log (%s): %s %s", e.Source, e.Text, e.URL)
		}
	case *page.EventJavascriptDialogOpening:
		p.mu.Lock()
		p.dialogs = append(p.dialogs, fmt.Sprintf("%s: %q", ev.Type, ev.Message))
		p.mu.Unlock()
		// A dialog blocks the page until someone answers it; the read loop
		// must not wait, so answer from another goroutine.
		go func() {
			_, _ = chromedp.Call(p.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}()
	}
}

func (p *browserPage) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// checkClean fails the test if the page logged an error or opened a dialog.
func (p *browserPage) checkClean() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.problems {
		p.t.Errorf("page problem: %s", s)
	}
	for _, s := range p.dialogs {
		p.t.Errorf("page opened a dialog: %s", s)
	}
}

// do runs actions on the tab, failing the test on error.
func (p *browserPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v\n%s", err, p.state())
	}
}

// eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its JSON value into T.
func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	v, err := evalErr[T](p, expr)
	if err != nil {
		p.t.Fatalf("evaluating %s: %v\n%s", expr, err, p.state())
	}
	return v
}

func evalErr[T any](p *browserPage, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitFor polls a JavaScript boolean expression until it is true, failing
// the test with what the page shows if it is not within waitTimeout.
func (p *browserPage) waitFor(what, expr string) {
	p.t.Helper()
	ssetest.Eventually(p.t, what, func() error {
		ok, err := evalErr[bool](p, "Boolean("+expr+")")
		if err == nil && ok {
			return nil
		}
		return notTrue{p, expr, err}
	})
}

// notTrue is why a wait on the page has not ended yet. It reads the page's
// state only when printed, so a poll stays one evaluation.
type notTrue struct {
	p    *browserPage
	expr string
	err  error // of the evaluation; nil if it was false
}

func (e notTrue) Error() string {
	return fmt.Sprintf("%s (last error %v)\n%s", e.expr, e.err, e.p.state())
}

// state describes the page for a failure message.
func (p *browserPage) state() string {
	s, err := evalErr[string](p, `(() => {
		const t = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : '(none)'; };
		return ['conn-state', 'conn-session', 'conn-history', 'app-error', 'channels-error',
			'chat-error', 'bulk-status', 'bulk-bytes', 'bulk-error']
			.map((id) => id + ': ' + t(id)).join('\n');
	})()`)
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return s + "\nproblems: " + strings.Join(p.problems, "; ")
}

// text returns the trimmed textContent of the element with the id.
func (p *browserPage) text(id string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`document.getElementById(%q).textContent.trim()`, id))
}

// count returns the number of characters channel name has received. The
// page draws in animation frames, so it reads the count after the next one.
func (p *browserPage) count(name string) int {
	p.t.Helper()
	return eval[int](p, fmt.Sprintf(`new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() =>
		resolve(Number(document.getElementById('ch-%s-count').dataset.count)))))`, name))
}

func contextWithTimeout(p *browserPage) (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, waitTimeout)
}

// setInput sets an input's value from script, firing input as typing does;
// chromedp.Clear only resets the value attribute, which a value the page
// set itself overrides.
func setInput(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const e = document.getElementById(%s);
		e.value = %s;
		e.dispatchEvent(new Event('input', { bubbles: true }));
	})()`, js(id), js(value)))
}

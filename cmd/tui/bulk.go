package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// bulkPhase is where the bulk line is in its cycle.
type bulkPhase int

const (
	bulkIdle     bulkPhase = iota // a hint, or the result of the last transfer
	bulkPrompt                    // asking what to download
	bulkStarting                  // the POST is under way
	bulkRunning                   // chunks are arriving
	bulkSaving                    // done; closing and re-hashing the file
)

// bulk is the model of the bulk line: a prompt for a size or file name, then
// a progress bar with the speed, then the verdict and where the data is.
type bulk struct {
	st    Styles
	keys  keyMap
	phase bulkPhase
	input textinput.Model
	bar   progress.Model
	files map[string]string // file names as shown → as the server spells them
	width int

	what     string // what was asked for, for the progress line
	t        *client.Transfer
	file     *os.File // open while chunks arrive; then handed to saveBulk or abortBulk
	path     string
	started  time.Time
	received int64
	total    int64
	rate     float64 // bytes per second, averaged since the start

	result string // the last verdict, shown while idle
	ok     bool
	last   bulkSavedMsg // the last transfer saved
}

func newBulk(st Styles, keys keyMap) bulk {
	in := textinput.New()
	in.Prompt = "bulk: "
	in.Placeholder = "size (20MB, 512KiB, 1000) or file name"
	in.CharLimit = 256
	in.ShowSuggestions = true
	in.Cursor.SetMode(cursor.CursorStatic)
	in.PlaceholderStyle = st.Placeholder
	in.CompletionStyle = st.Placeholder
	bar := progress.New(progress.WithSolidFill(st.BarColor), progress.WithColorProfile(lipgloss.ColorProfile()), progress.WithoutPercentage())
	return bulk{st: st, keys: keys, input: in, bar: bar}
}

// SetWidth sets the line's width.
func (b *bulk) SetWidth(w int) {
	b.width = w
	b.input.Width = max(w-lipgloss.Width(b.input.Prompt)-1, 1)
}

// SetFiles gives the names the prompt offers to complete. They are shown
// sanitised and mapped back to the server's spelling when asked for.
func (b *bulk) SetFiles(files []protocol.File) {
	b.files = map[string]string{}
	names := make([]string, 0, len(files))
	for _, f := range files {
		shown := sanitize(f.Name)
		b.files[shown] = f.Name
		names = append(names, shown)
	}
	b.input.SetSuggestions(names)
}

// Focused reports whether the prompt has the keyboard.
func (b *bulk) Focused() bool { return b.phase == bulkPrompt }

// Busy reports whether a transfer is under way.
func (b *bulk) Busy() bool { return b.phase >= bulkStarting }

// Prompt opens the prompt.
func (b *bulk) Prompt() tea.Cmd {
	b.phase = bulkPrompt
	b.input.Reset()
	return b.input.Focus()
}

// Update handles keys while the prompt is open: Enter asks for the transfer
// (a bulkSubmitMsg for the root), Esc closes the prompt, Tab completes a
// file name.
func (b bulk) Update(msg tea.Msg) (bulk, tea.Cmd) {
	if b.phase != bulkPrompt {
		return b, nil
	}
	if k, ok := msg.(tea.KeyMsg); ok {
		switch {
		case key.Matches(k, b.keys.Send):
			req, what, err := b.request(b.input.Value())
			if err != nil {
				b.input.Err = err
				return b, nil
			}
			b.input.Blur()
			b.phase, b.what = bulkStarting, what
			return b, func() tea.Msg { return bulkSubmitMsg{req: req} }
		case key.Matches(k, b.keys.Cancel):
			b.input.Blur()
			b.phase = bulkIdle
			return b, nil
		}
	}
	var cmd tea.Cmd
	b.input, cmd = b.input.Update(msg)
	b.input.Err = nil
	return b, cmd
}

// request reads the prompt: a file name from GET /files, else a size.
func (b *bulk) request(s string) (protocol.BulkPost, string, error) {
	s = strings.TrimSpace(s)
	if name, ok := b.files[s]; ok {
		return protocol.BulkPost{File: name}, s, nil
	}
	n, err := parseSize(s)
	if err != nil {
		if len(b.files) > 0 {
			err = fmt.Errorf("%w; or a file name (tab completes)", err)
		}
		return protocol.BulkPost{}, "", err
	}
	return protocol.BulkPost{Bytes: &n}, formatBytes(float64(n)), nil
}

// Started records the transfer the server accepted and the file it goes
// to, or why it did not start. From now on the bulk line owns the file: the
// stream writes the transfer into it, and the line hands it to the Cmd that
// closes it (saveBulk, abortBulk), or closes it in Close.
func (b *bulk) Started(msg bulkStartedMsg, now time.Time) tea.Cmd {
	if msg.err != nil {
		b.phase, b.ok = bulkIdle, false
		b.result = "bulk " + b.what + " failed: " + friendly(msg.err)
		return nil
	}
	b.phase, b.t, b.file, b.path, b.started = bulkRunning, msg.t, msg.f, msg.path, now
	b.received, b.total = msg.t.Progress()
	b.rate = 0
	return b.Progress(msg.t, now)
}

// Progress updates the bar from the transfer t; once t has ended it
// returns the Cmd that closes and checks its file.
func (b *bulk) Progress(t *client.Transfer, now time.Time) tea.Cmd {
	if t != b.t || b.phase != bulkRunning {
		return nil
	}
	b.received, b.total = t.Progress()
	if el := now.Sub(b.started).Seconds(); el > 0 {
		b.rate = float64(b.received) / el
	}
	select {
	case <-t.Done():
		b.phase = bulkSaving
		f := b.handOver()
		return saveBulk(t, f, b.path)
	default:
		return nil
	}
}

// Tick refreshes the speed of the transfer under way, if any (see Progress).
func (b *bulk) Tick(now time.Time) tea.Cmd {
	if b.t == nil {
		return nil
	}
	return b.Progress(b.t, now)
}

// Abort gives up on the transfer under way, whose stream is gone (why):
// it returns the Cmd that closes its file, or nil if none runs.
func (b *bulk) Abort(why error) tea.Cmd {
	if b.phase != bulkRunning || b.t == nil {
		return nil
	}
	b.phase = bulkSaving
	return abortBulk(b.t, b.handOver(), b.path, why)
}

// handOver gives up the file to the Cmd that will close it.
func (b *bulk) handOver() *os.File {
	f := b.file
	b.file = nil
	return f
}

// Close closes the file of a transfer still under way, once the program
// and the stream writing to it have stopped; its partial data stays.
func (b *bulk) Close() {
	if f := b.handOver(); f != nil {
		f.Close()
	}
}

// Saved records the verdict once the file is closed and hashed again.
func (b *bulk) Saved(m bulkSavedMsg, now time.Time) {
	if m.t != b.t {
		return
	}
	b.phase, b.last = bulkIdle, m
	el := now.Sub(b.started).Round(10 * time.Millisecond)
	terr := m.t.Err()
	select {
	case <-m.t.Done():
	default: // aborted: it never ended
		terr = m.err
		if terr == nil {
			terr = errors.New("the transfer did not finish")
		}
	}
	want := m.t.Accepted().SHA256
	switch {
	case terr != nil:
		b.ok, b.result = false, "bulk "+b.what+" failed: "+errText(terr)
	case m.err != nil:
		b.ok, b.result = false, "bulk "+b.what+": saving failed: "+errText(m.err)
	case m.sha256 != m.t.SHA256() || (want != "" && m.sha256 != want):
		b.ok, b.result = false, fmt.Sprintf("bulk %s: file on disk has sha256 %.12s…, expected %.12s…", b.what, m.sha256, want)
	default:
		b.ok, b.result = true, fmt.Sprintf("sha256 verified → %s (%s in %s)", sanitize(m.path), formatBytes(float64(b.received)), el)
	}
	if !b.ok && m.path != "" {
		b.result += " (partial data in " + sanitize(m.path) + ")"
	}
	b.t = nil
}

// View draws the bulk line: the prompt, the progress or the last verdict.
func (b *bulk) View() string {
	w := max(b.width, 1)
	cut := lipgloss.NewStyle().MaxWidth(w)
	switch b.phase {
	case bulkPrompt:
		if b.input.Err == nil {
			return cut.Render(b.input.View())
		}
		// Room for what was typed, the rest for the complaint.
		in := b.input
		in.Width = lipgloss.Width(in.Value()) + 1
		return cut.Render(in.View() + " " + b.st.BulkError.Render(errText(b.input.Err)))
	case bulkStarting:
		return cut.Render(b.st.Bulk.Render("bulk " + b.what + ": starting…"))
	case bulkRunning, bulkSaving:
		pct := 0.0
		if b.total > 0 {
			pct = float64(b.received) / float64(b.total)
		} else if b.total == 0 {
			pct = 1
		}
		info := fmt.Sprintf(" %3.0f%% %s/%s %s/s", pct*100, formatBytes(float64(b.received)), formatBytes(float64(max(b.total, 0))), formatBytes(b.rate))
		if b.phase == bulkSaving {
			info += " checking…"
		}
		b.bar.Width = max(w-lipgloss.Width(info), 4)
		return cut.Render(b.bar.ViewAs(pct) + info)
	}
	if b.result != "" {
		if b.ok {
			return cut.Render(b.st.BulkOK.Render("✓ ") + b.result)
		}
		return cut.Render(b.st.BulkError.Render("✗ " + b.result))
	}
	return cut.Render(b.st.Help.Render("b: bulk download"))
}

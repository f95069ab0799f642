// Command tui is the terminal client of xhrsse: a pane for every channel of
// the server fills with the characters of a ticking channel or the lines of
// a published one, a chat pane talks with everyone on the server, and bulk
// downloads arrive over the same event stream, verified by sha256. It joins
// any xhrsse server, tuned to every channel at first:
//
//	go run ./cmd/tui -server http://host:port -name ann
//
// Keys: 1-9 tune a channel in or out, a all, n none, c or tab chat, b bulk
// download, ? help, q quit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxFPS caps how often the screen is redrawn.
const maxFPS = 30

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main with its arguments and error output, returning the exit code.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("tui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "base URL of the xhrsse server")
	name := fs.String("name", defaultName(), "your name in the chat")
	dir := fs.String("dir", filepath.Join(os.TempDir(), "xhrsse"), "where bulk downloads are saved")
	logPath := fs.String("log", "", "write a debug log to this file (the terminal is taken by the UI)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tui: unexpected arguments %q\n", fs.Args())
		return 2
	}

	logger := slog.New(slog.DiscardHandler)
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "tui: %v\n", err)
			return 1
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	cl, err := client.New(*server, client.WithLogger(logger))
	if err != nil {
		fmt.Fprintf(stderr, "tui: %v\n", err)
		return 2
	}
	cfg := config{server: cl.BaseURL(), name: chatName(*name), dir: *dir}

	ctx, cancel := context.WithCancel(context.Background())
	var ts tasks
	m := newModel(ctx, &ts, cl, cfg)
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithFPS(maxFPS))
	_, runErr := p.Run()

	// The program has stopped: end the stream and wait for its goroutines,
	// so that no write to a bulk file races its close.
	logger.Debug("tui: program stopped", "err", runErr)
	cancel()
	ts.Close()
	logger.Debug("tui: stream stopped")
	m.close()
	cl.CloseIdleConnections()

	el := time.Since(m.start)
	logger.Info("tui: stopped", "views", m.views, "seconds", el.Seconds(),
		"views_per_second", float64(m.views)/max(el.Seconds(), 1e-9))
	if runErr != nil && !errors.Is(runErr, tea.ErrProgramKilled) {
		fmt.Fprintf(stderr, "tui: %v\n", runErr)
		return 1
	}
	return 0
}

// defaultName is the chat name when -name is not given: the login name.
func defaultName() string {
	for _, v := range []string{"USER", "LOGNAME", "USERNAME"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return "anon"
}

// chatName makes a name the server accepts: non-empty, printable, at most
// protocol.MaxChatName characters.
func chatName(s string) string {
	s = sanitize(s)
	r := []rune(s)
	if len(r) > protocol.MaxChatName {
		r = r[:protocol.MaxChatName]
	}
	if len(r) == 0 {
		return "anon"
	}
	return string(r)
}

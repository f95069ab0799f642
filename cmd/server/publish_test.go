package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestPublishFlags: -channel declares published channels, tokens come from
// the environment and the token file, and no token reaches the log.
func TestPublishFlags(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	const fileTok1, fileTok2, envTok = "file-token-one", "file-token-two", "env-token-xyz"
	if err := os.WriteFile(file, []byte(fileTok1+"\n\n  "+fileTok2+"  \r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XHRSSE_PUBLISH_TOKEN", envTok)
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-log-level", "debug",
		"-channel", "log=Build log, all of it", "-channel", "prices", "-publish-token-file", file)
	base := p.listening(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: wait}

	resp, err := hc.Get(base + "channels")
	if err != nil {
		t.Fatal(err)
	}
	var chans []protocol.Channel
	err = json.NewDecoder(resp.Body).Decode(&chans)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range chans {
		got = append(got, c.Name+":"+c.Kind+":"+c.Title)
	}
	want := "one:ticker:Letters|two:ticker:Ideographs|three:ticker:Arrows & symbols|log:published:Build log, all of it|prices:published:prices"
	if strings.Join(got, "|") != want {
		t.Fatalf("GET /channels: %s\nwant %s", strings.Join(got, "|"), want)
	}

	publish := func(token, channel string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"channels/"+channel+"/events", strings.NewReader(`{"data":"x"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		token, channel string
		want           int
	}{
		{fileTok1, "log", http.StatusAccepted},
		{fileTok2, "prices", http.StatusAccepted},
		{envTok, "log", http.StatusAccepted},
		{"file-token", "log", http.StatusUnauthorized},
		{fileTok1, "one", http.StatusConflict},
	} {
		if got := publish(tc.token, tc.channel); got != tc.want {
			t.Errorf("publish to %s with %q: %d, want %d", tc.channel, tc.token, got, tc.want)
		}
	}
	log := p.log()
	for _, tok := range []string{fileTok1, fileTok2, envTok} {
		if strings.Contains(log, tok) {
			t.Errorf("stderr contains a publish token:\n%s", log)
		}
	}
	if !strings.Contains(log, "publish_tokens=3") {
		t.Errorf("stderr does not count the tokens:\n%s", log)
	}
}

// TestPublishBadFlags: bad publishing flags stop the binary before it
// listens, naming the problem.
func TestPublishBadFlags(t *testing.T) {
	bin := build(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"empty channel name", []string{"-channel", "=Title"}, "NAME"},
		{"channel named like a ticker", []string{"-channel", "one"}, `"one"`},
		{"channel named like an event", []string{"-channel", "chat"}, `"chat"`},
		{"channel twice", []string{"-channel", "log", "-channel", "log=Again"}, `"log"`},
		{"channel name with a slash", []string{"-channel", "a/b"}, `"a/b"`},
		{"zero publish rate", []string{"-publish-rate", "0"}, "-publish-rate"},
		{"missing token file", []string{"-publish-token-file", "/nonexistent/tokens"}, "-publish-token-file"},
		{"token file without a token", []string{"-publish-token-file", empty}, "no token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startBinary(t, bin, append([]string{"-addr", "127.0.0.1:0"}, c.args...)...)
			code := p.waitExit(t, wait)
			log := p.log()
			if code == 0 || strings.Contains(log, "msg=listening") {
				t.Fatalf("exit code %d; stderr:\n%s", code, log)
			}
			if !strings.Contains(log, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, log)
			}
		})
	}
}

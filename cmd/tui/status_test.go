package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
)

func TestStatusStates(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tests := []struct {
		name  string
		apply func(s *status)
		want  []string
	}{
		{"connected", func(s *status) { s.Conn(client.Connected, 0, nil, now) }, []string{"session abcdef… │", "connected"}},
		{"reconnecting", func(s *status) {
			s.Conn(client.Reconnecting, 3, errors.New("connection refused"), now)
		}, []string{"reconnecting (attempt 3)", "connection refused"}},
		{"resumed clears the error", func(s *status) {
			s.Conn(client.Reconnecting, 1, errors.New("connection refused"), now)
			s.Conn(client.Resumed, 0, nil, now)
		}, []string{"resumed"}},
		{"cluster node", func(s *status) {
			s.SetNode("n2\x1b[31m")
			s.Conn(client.Resumed, 0, nil, now)
		}, []string{"resumed via n2"}},
		{"new session", func(s *status) { s.Conn(client.NewSession, 0, errors.New("404"), now) }, []string{"new session", "tuning restored"}},
		{"gap note", func(s *status) { s.Note("gap: 12 events could not be replayed", 1, now) }, []string{"gap: 12 events"}},
		{"unreachable", func(s *status) {
			s.Dialing(2, errors.New("connection refused"), 2*time.Second)
		}, []string{"server unreachable (attempt 2)", "connection refused; retrying in 2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStatus(DefaultStyles(), "http://h:1")
			s.SetSession("abcdefghSECRETSECRET")
			tt.apply(&s)
			v := s.View()
			for _, w := range tt.want {
				if !strings.Contains(v, w) {
					t.Errorf("status %q lacks %q", v, w)
				}
			}
			if strings.Contains(v, "\x1b[31m") {
				t.Errorf("status %q passes an escape sequence from the server through", v)
			}
			if strings.Contains(v, "SECRET") {
				t.Errorf("status %q shows the whole session id", v)
			}
			if tt.name == "resumed clears the error" && strings.Contains(v, "refused") {
				t.Errorf("status %q still shows the old error", v)
			}
		})
	}
}

func TestStatusNoteExpires(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := newStatus(DefaultStyles(), "http://h:1")
	s.Note("gap: 1 events could not be replayed", 1, now)
	s.Tick(now.Add(noteTTL / 2))
	if !strings.Contains(s.View(), "gap") {
		t.Fatal("note gone too early")
	}
	s.Tick(now.Add(noteTTL + time.Second))
	if strings.Contains(s.View(), "gap") {
		t.Fatal("note did not expire")
	}
}

func TestStatusRate(t *testing.T) {
	s := newStatus(DefaultStyles(), "http://h:1")
	s.SetSession("abcdefgh")
	t0 := time.Unix(1_000_000, 0)
	for sec := range 5 {
		for i := range 10 {
			s.Count(t0.Add(time.Duration(sec)*time.Second+time.Duration(i)*time.Millisecond), 3)
		}
	}
	s.Tick(t0.Add(5 * time.Second))
	if !strings.Contains(s.View(), "30.0 ev/s") {
		t.Fatalf("status %q, want 30.0 ev/s", s.View())
	}
	s.Tick(t0.Add(60 * time.Second)) // long silence
	if !strings.Contains(s.View(), "0.0 ev/s") {
		t.Fatalf("status %q, want 0.0 ev/s after silence", s.View())
	}
}

func TestGapNote(t *testing.T) {
	tests := []struct {
		missed  uint64
		cluster bool
		want    string
	}{
		{1, false, "gap: 1 event could not be replayed"},
		{12, false, "gap: 12 events could not be replayed"},
		{4057, true, "gap: up to 4057 events could not be replayed"},
		{1, true, "gap: up to 1 event could not be replayed"},
	}
	for _, tt := range tests {
		if got := gapNote(tt.missed, tt.cluster); got != tt.want {
			t.Errorf("gapNote(%d, %v) = %q, want %q", tt.missed, tt.cluster, got, tt.want)
		}
	}
}

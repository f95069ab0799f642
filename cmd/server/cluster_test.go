package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// startBroker runs an embedded NATS broker with JetStream on loopback.
func startBroker(t *testing.T) string {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(wait) {
		t.Fatal("broker did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return "nats://" + srv.Addr().(*net.TCPAddr).String()
}

// TestClusterOfBinaries: three real server processes on one broker. Chat
// crosses nodes; a POST on another node steers the stream; a node killed
// with SIGKILL loses its streams, whose clients resume on another node after
// a gap, still tuned; a node stopped with SIGTERM hands its sessions over,
// and their clients resume on another node without a gap.
func TestClusterOfBinaries(t *testing.T) {
	bin := build(t)
	broker := startBroker(t)
	var procs []*proc
	var nodes []*client
	for _, name := range []string{"n1", "n2", "n3"} {
		p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-nats", broker, "-node", name,
			"-rate-one", "20", "-rate-two", "20", "-rate-three", "20", "-handover", "20s")
		procs = append(procs, p)
		nodes = append(nodes, listen(t, p))
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// A session on n1, steered from n2, with chat from n3.
	id := n1.session(`{"channels":["one"]}`)
	s, a := n1.open("/events?session=" + id)
	if s == nil {
		t.Fatalf("stream on n1: %d %s", a.Status, a.Body)
	}
	n2.want("tune via n2", n2.do("POST", "/sessions/"+id+"/channels", `{"channel":"three","on":true}`), http.StatusOK)
	s.UntilNamed(t, "three")
	other := n3.session("")
	n3.want("chat on n3", n3.do("POST", "/sessions/"+other+"/chat", `{"text":"hello from n3"}`), http.StatusAccepted)
	if m, _ := s.UntilNamed(t, protocol.EventChat); !strings.Contains(m.Data, "hello from n3") {
		t.Fatalf("chat on n1's stream: %s", m.Data)
	}
	one, _ := s.UntilNamed(t, "one")
	last := one.ID

	// SIGKILL n1: its client comes back on n2.
	if err := procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procs[0].waitExit(t, wait)
	s2, a := n2.open("/events?session="+id, "Last-Event-ID", last)
	if s2 == nil {
		t.Fatalf("resume on n2 after n1 died: %d %s", a.Status, a.Body)
	}
	m, _ := s2.UntilNamed(t, protocol.EventGap)
	var gap protocol.Gap
	if err := json.Unmarshal([]byte(m.Data), &gap); err != nil || gap.Missed == 0 {
		t.Fatalf("gap %q", m.Data)
	}
	s2.UntilNamed(t, "three") // still tuned to both
	s2.UntilNamed(t, "one")
	n3.want("chat after the recovery", n3.do("POST", "/sessions/"+id+"/chat", `{"text":"still here"}`), http.StatusAccepted)
	if m, _ := s2.UntilNamed(t, protocol.EventChat); !strings.Contains(m.Data, "still here") {
		t.Fatalf("chat after the recovery: %s", m.Data)
	}

	// SIGTERM n2: bye, then its client resumes on n3 with nothing missed.
	if err := procs[1].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	bye, _ := s2.UntilNamed(t, protocol.EventBye)
	after := ssetest.ID(t, bye)
	s3, a := n3.open("/events?session="+id, "Last-Event-ID", strconv.FormatUint(after, 10))
	if s3 == nil {
		t.Fatalf("resume on n3 during n2's handover: %d %s", a.Status, a.Body)
	}
	if m, _ := s3.UntilNamed(t, protocol.EventSession); !strings.Contains(m.Data, `"resumed":true`) {
		t.Fatalf("session event %s", m.Data)
	}
	for next := after + 1; next < after+20; next++ {
		if m := s3.Next(t); m.Name == protocol.EventGap || m.ID != strconv.FormatUint(next, 10) {
			t.Fatalf("after the handover: %s id %s, want id %d and no gap", m.Name, m.ID, next)
		}
	}
	if code := procs[1].waitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("n2 exit code %d:\n%s", code, procs[1].log())
	}
	if log := procs[1].log(); !strings.Contains(log, `msg="handover done" sessions_left=0`) {
		t.Errorf("n2 did not hand every session over:\n%s", log)
	}
}

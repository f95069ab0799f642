package clustertest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A broker in a child process can die as a machine does (Kill, SIGKILL): no
// shutdown, its JetStream leaders do not step down, the kernel resets its
// connections. The child is the test binary itself, run again with
// childEnv set; RunChildBroker, called first in the package's TestMain,
// makes it a broker.

const childEnv = "XHRSSE_CLUSTERTEST_BROKER"

// childConfig is what the child needs to be the broker.
type childConfig struct {
	Name   string
	Dir    string
	Port   int
	Route  int
	Routes []string
}

// RunChildBroker runs a broker, and exits when its parent closes its
// standard input, if this process was started as the child of a broker
// (StartBrokersWithChild); else it returns at once. Call it first in the
// TestMain of a package whose tests use StartBrokersWithChild.
func RunChildBroker() {
	v := os.Getenv(childEnv)
	if v == "" {
		return
	}
	var c childConfig
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, "broker child:", err)
		os.Exit(2)
	}
	b := &Broker{name: c.Name, dir: c.Dir, port: c.Port, route: c.Route}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "broker child:", err)
			os.Exit(2)
		}
		b.routes = append(b.routes, u)
	}
	srv, err := natsserver.NewServer(b.options())
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker child:", err)
		os.Exit(2)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		os.Exit(3) // the port is not free yet: the parent tries again
	}
	fmt.Printf("ready %d\n", srv.Addr().(*net.TCPAddr).Port)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent stops it, or dies
	srv.Shutdown()
	srv.WaitForShutdown()
	os.Exit(0)
}

// StartBrokersWithChild is StartBrokers with broker b1 in a child process,
// so that it can be killed (Broker.Kill). The package's TestMain must call
// RunChildBroker. Brokers' JetStream queries (StreamLeader, StepDown,
// BrokerOf) see only b2 and b3.
func StartBrokersWithChild(t testing.TB) *Brokers {
	t.Helper()
	return startBrokers(t, true)
}

// startChild starts the child process and waits until it is ready,
// trying again for a while if its port is not free yet.
func (b *Broker) startChild() {
	b.t.Helper()
	var routes []string
	for _, r := range b.routes {
		routes = append(routes, r.String())
	}
	for try := 0; ; try++ {
		cfg, _ := json.Marshal(childConfig{Name: b.name, Dir: b.dir, Port: b.port, Route: b.route, Routes: routes})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.t.Fatalf("broker %s: %v", b.name, err)
		}
		line := make(chan string, 1)
		go func() {
			l, _ := bufio.NewReader(stdout).ReadString('\n')
			line <- l
			_, _ = io.Copy(io.Discard, stdout) // until the child exits
		}()
		var got string
		select {
		case got = <-line:
		case <-time.After(20 * time.Second):
		}
		if port, ok := strings.CutPrefix(strings.TrimSpace(got), "ready "); ok {
			b.cmd, b.stdin = cmd, stdin
			if b.port, err = strconv.Atoi(port); err != nil {
				b.t.Fatalf("broker %s: %q", b.name, got)
			}
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		stdin.Close()
		if try == 50 {
			b.t.Fatalf("broker %s did not start in its child process", b.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill ends a broker in a child process with SIGKILL, as a machine dies,
// and waits until it has. Start brings it back on its port with its store.
func (b *Broker) Kill() {
	b.t.Helper()
	if !b.child {
		b.t.Fatal("clustertest: only a broker in a child process can be killed (StartBrokersWithChild)")
	}
	b.stopChild(true)
}

// stopChild ends the child: SIGKILL if kill, else it shuts down when its
// standard input closes.
func (b *Broker) stopChild(kill bool) {
	if b.cmd == nil {
		return
	}
	if kill {
		_ = b.cmd.Process.Signal(syscall.SIGKILL)
	}
	b.stdin.Close()
	_ = b.cmd.Wait()
	b.cmd, b.stdin = nil, nil
}

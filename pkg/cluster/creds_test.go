package cluster_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A credsBroker is a broker alone in operator mode: it lets in only users
// whose JWT an account it trusts signed, proving it with their nkey (what
// -nats-creds names: a credentials file as nsc writes it). Everything is
// made here, in the test's temporary directory.
type credsBroker struct {
	srv     *natsserver.Server
	account nkeys.KeyPair
}

func (b *credsBroker) URL() string {
	return "nats://127.0.0.1:" + strconv.Itoa(b.srv.Addr().(*net.TCPAddr).Port)
}

func (b *credsBroker) Replicas() int { return 1 }

func startCredsBroker(t *testing.T) *credsBroker {
	t.Helper()
	operator := newKeys(t, nkeys.CreateOperator)
	account := newKeys(t, nkeys.CreateAccount)
	system := newKeys(t, nkeys.CreateAccount)
	op := jwt.NewOperatorClaims(publicKey(t, operator))
	op.Name = "test"
	op.SystemAccount = publicKey(t, system)
	opJWT, err := op.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &natsserver.MemAccResolver{}
	for _, a := range []struct {
		kp nkeys.KeyPair
		js bool
	}{{account, true}, {system, false}} {
		ac := jwt.NewAccountClaims(publicKey(t, a.kp))
		if a.js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		acJWT, err := ac.Encode(operator)
		if err != nil {
			t.Fatal(err)
		}
		if err := resolver.Store(publicKey(t, a.kp), acJWT); err != nil {
			t.Fatal(err)
		}
	}
	srv := runBroker(t, natsserver.Options{
		TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: resolver,
		SystemAccount: publicKey(t, system),
	})
	return &credsBroker{srv: srv, account: account}
}

// creds writes a credentials file for a new user that account signs, with
// the permissions docs/SCALING.md lists for the prefix xhrsse, and returns
// its path and the user's seed (the secret in it).
func creds(t *testing.T, account nkeys.KeyPair) (path, seed string) {
	t.Helper()
	user := newKeys(t, nkeys.CreateUser)
	uc := jwt.NewUserClaims(publicKey(t, user))
	allowed := jwt.StringList{"xhrsse.>", "_INBOX.>", "$JS.API.>", "$KV.xhrsse_sessions.>", "$KV.xhrsse_config.>"}
	uc.Pub.Allow, uc.Sub.Allow = allowed, allowed
	userJWT, err := uc.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	s, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	file, err := jwt.FormatUserConfig(userJWT, s)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, string(s)
}

func newKeys(t *testing.T, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func publicKey(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// Nodes reach a broker that asks for credentials (a user JWT and its nkey)
// through what cmd/server's -nats-creds gives them (Config.Credentials),
// with no more permissions than docs/SCALING.md lists: chat, a forwarded
// POST and a take all cross it. Their logs never show the user's seed.
func TestCredentialsBroker(t *testing.T) {
	b := startCredsBroker(t)
	file, seed := creds(t, b.account)
	var logs ssetest.Buffer
	withCreds := func(c *cluster.Config) {
		c.Credentials = file
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a := clustertest.StartNodeWith(t, b, "a", withCreds)
	bn := clustertest.StartNodeWith(t, b, "b", withCreds)

	id := newSession(t, a)
	s := openStream(t, bn, id, "") // taken from a, over the broker
	defer s.Close()
	if st, _ := post(t, a.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Name: "t", Text: "with credentials"}, nil); st != http.StatusAccepted {
		t.Fatalf("chat forwarded from a to b: %d", st)
	}
	s.until(t, chatText("with credentials"))
	if !strings.Contains(logs.String(), "session handed over") {
		t.Fatal("the nodes logged nothing at debug level: the check below would prove nothing")
	}
	if strings.Contains(logs.String(), seed) {
		t.Fatal("a node's log shows the user's seed")
	}
}

// A node without credentials, or with a user no account the broker trusts
// signed, or with a credentials file that is not there, is refused at Dial,
// saying why, and neither its error nor its log shows the seed.
func TestCredentialsBrokerRefuses(t *testing.T) {
	b := startCredsBroker(t)
	stranger, strangerSeed := creds(t, newKeys(t, nkeys.CreateAccount))
	for _, tc := range []struct {
		name  string
		creds string
		want  string
	}{
		{"no credentials", "", "authorization"},
		{"unknown account", stranger, "authorization"},
		{"no such file", filepath.Join(t.TempDir(), "missing.creds"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var logs ssetest.Buffer
			n, err := cluster.Dial(ctx, cluster.Config{
				URL: b.URL(), Node: "x", Credentials: tc.creds,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if err == nil {
				n.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("Dial: %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), strangerSeed) || strings.Contains(logs.String(), strangerSeed) {
				t.Fatalf("Dial's error or log shows the seed: %v", err)
			}
		})
	}
}

package cluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A securedBroker is a broker alone that speaks TLS only, with a certificate
// of its own authority (CAFile, what -nats-ca names), and lets in only the
// user "xhrsse" with its password.
type securedBroker struct {
	srv    *natsserver.Server
	CAFile string
}

const brokerPassword = "s3cret"

func startSecuredBroker(t *testing.T) *securedBroker {
	t.Helper()
	cert, caPEM := certificateAuthority(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runBroker(t, natsserver.Options{
		Username: "xhrsse", Password: brokerPassword,
		TLS: true, TLSTimeout: 5, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	return &securedBroker{srv: srv, CAFile: caFile}
}

// URL is where nodes connect, as -nats gives it: TLS, with the credentials.
func (b *securedBroker) URL() string { return b.urlWith("xhrsse:" + brokerPassword) }

func (b *securedBroker) urlWith(userinfo string) string {
	return "tls://" + userinfo + "@127.0.0.1:" + strconv.Itoa(b.srv.Addr().(*net.TCPAddr).Port)
}

func (b *securedBroker) Replicas() int { return 1 }

// certificateAuthority makes a self-signed certificate for 127.0.0.1 that is
// its own authority, and returns it with its PEM.
func certificateAuthority(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xhrsse test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Nodes reach a broker that asks for TLS and a password through what
// cmd/server's -nats and -nats-ca give them (Config.URL and RootCA): chat,
// a forwarded POST and a take all cross it.
func TestSecuredBroker(t *testing.T) {
	b := startSecuredBroker(t)
	withCA := func(c *cluster.Config) { c.RootCA = b.CAFile }
	a := clustertest.StartNodeWith(t, b, "a", withCA)
	bn := clustertest.StartNodeWith(t, b, "b", withCA)

	id := newSession(t, a)
	s := openStream(t, bn, id, "") // taken from a, over the broker
	defer s.Close()
	if st, _ := post(t, a.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Name: "t", Text: "over TLS"}, nil); st != http.StatusAccepted {
		t.Fatalf("chat forwarded from a to b: %d", st)
	}
	s.until(t, chatText("over TLS"))
}

// A node that does not trust the broker's authority, or whose password is
// wrong, is refused at Dial, saying why.
func TestSecuredBrokerRefuses(t *testing.T) {
	b := startSecuredBroker(t)
	for _, tc := range []struct {
		name string
		cfg  cluster.Config
		want string
	}{
		{"no CA", cluster.Config{URL: b.URL()}, "certificate"},
		{"wrong password", cluster.Config{URL: b.urlWith("xhrsse:wrong"), RootCA: b.CAFile}, "authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tc.cfg.Node = "x"
			n, err := cluster.Dial(ctx, tc.cfg)
			if err == nil {
				n.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("Dial: %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), brokerPassword) || strings.Contains(err.Error(), ":wrong@") {
				t.Fatalf("Dial's error shows the password: %v", err)
			}
		})
	}
}

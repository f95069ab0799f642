package proxytest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// exampleConf is the nginx configuration README.md tells users to install.
// The tests run this file itself, so it cannot drift from what is tested.
const exampleConf = "../../deploy/nginx.conf"

// An nginx is a real nginx process run from deploy/nginx.conf in front of a
// test server, with its pid file, logs, temporary files and certificate in
// a directory of its own and listening on loopback only.
type nginx struct {
	URL      string // "http://127.0.0.1:PORT"
	TLSURL   string // "https://127.0.0.1:PORT", HTTP/2
	Cert     *x509.Certificate
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	confText string
}

// nginxTweaks changes the example for one test; the zero value runs it as
// shipped.
type nginxTweaks struct {
	// readTimeout replaces the 60s of proxy_read_timeout, so that a test can
	// prove pings keep a stream open without waiting a minute.
	readTimeout string
	// location is added to the location block, and replace is applied
	// after the test's own replacements: used only by the controls that
	// show what goes wrong with another setting.
	location string
	replace  [][2]string
}

// nginxPath finds the nginx binary. The tests need the real thing: a missing
// nginx fails them, with what to install.
func nginxPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatal("no nginx on PATH nor in /usr/sbin; install it (Debian: apt-get install -y nginx, as .ci/run does) to run the proxy tests")
	return ""
}

// startNginx runs nginx from the example configuration in front of upstream
// ("127.0.0.1:PORT") and stops it when the test ends.
func startNginx(t testing.TB, upstream string, tw nginxTweaks) *nginx {
	t.Helper()
	bin := nginxPath(t)
	example, err := os.ReadFile(exampleConf)
	if err != nil {
		t.Fatalf("reading the example: %v", err)
	}
	dir := t.TempDir()
	cert := writeCert(t, dir)
	// Two free ports; another process may take one between our close and
	// nginx's bind, so a failed start is tried again with new ones.
	var lastErr error
	for try := 0; try < 3; try++ {
		httpPort, tlsPort := freePort(t), freePort(t)
		conf, err := nginxConf(string(example), dir, upstream, httpPort, tlsPort, tw)
		if err != nil {
			t.Fatalf("deploy/nginx.conf no longer has a line the test replaces: %v", err)
		}
		n := &nginx{
			URL:      "http://" + httpPort,
			TLSURL:   "https://" + tlsPort,
			Cert:     cert,
			dir:      dir,
			exited:   make(chan struct{}),
			confText: conf,
		}
		if lastErr = n.start(t, bin); lastErr == nil {
			return n
		}
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			break
		}
	}
	t.Fatalf("nginx: %v", lastErr)
	return nil
}

// nginxConf turns the example into the test's configuration: every
// replacement must match exactly once, so an edit of the example that the
// test would silently stop covering fails instead.
func nginxConf(example, dir, upstream, httpAddr, tlsAddr string, tw nginxTweaks) (string, error) {
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx would switch its workers to www-data, which cannot
		// enter the test's private directory.
		user = "user root;"
	}
	temp := ""
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temp += fmt.Sprintf("\n    %s_temp_path %s;", kind, filepath.Join(dir, kind))
	}
	readTimeout := "proxy_read_timeout 60s;"
	if tw.readTimeout != "" {
		readTimeout = "proxy_read_timeout " + tw.readTimeout + ";"
	}
	if tw.location != "" {
		readTimeout += "\n            " + tw.location
	}
	reps := []struct{ old, new string }{
		{"user www-data;", user},
		{"pid /run/nginx.pid;", "pid " + filepath.Join(dir, "nginx.pid") + ";"},
		{"error_log /var/log/nginx/error.log;", "error_log " + filepath.Join(dir, "error.log") + " info;"},
		{"access_log /var/log/nginx/access.log;", "access_log " + filepath.Join(dir, "access.log") + ";"},
		{"http {", "http {" + temp},
		{"server 127.0.0.1:8080;", "server " + upstream + ";"},
		{"listen 80;", "listen " + httpAddr + ";"},
		{"listen 443 ssl http2;", "listen " + tlsAddr + " ssl http2;"},
		{"/etc/ssl/xhrsse/fullchain.pem", filepath.Join(dir, "cert.pem")},
		{"/etc/ssl/xhrsse/privkey.pem", filepath.Join(dir, "key.pem")},
		{"proxy_read_timeout 60s;", readTimeout},
	}
	for _, r := range tw.replace {
		reps = append(reps, struct{ old, new string }{r[0], r[1]})
	}
	conf := example
	for _, r := range reps {
		if n := strings.Count(conf, r.old); n != 1 {
			return "", fmt.Errorf("%q occurs %d times, want once", r.old, n)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	return conf, nil
}

// start runs nginx and waits until it answers through to the server.
func (n *nginx) start(t testing.TB, bin string) error {
	t.Helper()
	confPath := filepath.Join(n.dir, "nginx.conf")
	errLog := filepath.Join(n.dir, "error.log")
	if err := os.WriteFile(confPath, []byte(n.confText), 0o644); err != nil {
		return err
	}
	var out bytes.Buffer
	n.cmd = exec.Command(bin, "-p", n.dir, "-c", confPath, "-e", errLog, "-g", "daemon off;")
	n.cmd.Stdout, n.cmd.Stderr = &out, &out
	// If the test binary dies, nginx must not outlive it.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(ssetest.Wait)
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("nginx exited (%v): %s\nerror.log:\n%s", n.waitErr, out.String(), n.ErrorLog())
		default:
		}
		resp, err := hc.Get(n.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(n.stop)
				return nil
			}
		}
		if time.Now().After(deadline) {
			n.stop()
			return fmt.Errorf("nginx did not answer /healthz within %v (last: %v)\nerror.log:\n%s", ssetest.Wait, err, n.ErrorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends nginx the fast way (SIGTERM closes its connections at once) and
// waits for it; a process that hangs is killed.
func (n *nginx) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// ErrorLog returns what nginx has logged so far.
func (n *nginx) ErrorLog() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "error.log"))
	if err != nil {
		return "(no error.log: " + err.Error() + ")"
	}
	return string(b)
}

// TLSClient returns a client that trusts the certificate of n's HTTPS
// listener and speaks HTTP/2 to it. Its idle connections close when the test
// ends.
func (n *nginx) TLSClient(t testing.TB) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(n.Cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// writeCert writes a self-signed certificate for 127.0.0.1 into dir as
// cert.pem and key.pem, made the way cmd/server -tls-self-signed makes its
// own.
func writeCert(t testing.TB, dir string) *x509.Certificate {
	t.Helper()
	cert, _, err := server.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert.Leaf
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

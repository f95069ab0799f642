package proxytest

import (
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestZZExp(t *testing.T) {
	for _, loc := range []string{
		"proxy_ignore_headers X-Accel-Buffering;",
		"proxy_ignore_headers X-Accel-Buffering; proxy_buffering on;",
		"proxy_ignore_headers X-Accel-Buffering; gzip_types text/event-stream;",
		"gzip_types text/event-stream;",
	} {
		srv := startServer(t)
		ng := startNginx(t, srv.Addr, nginxTweaks{location: loc})
		hc := httpClient(t)
		session := newSession(t, hc, ng.URL)
		st := openStream(t, hc, ng.URL+"/events?session="+session, http.Header{"Accept-Encoding": {"gzip"}})
		t0 := time.Now()
		m, ok := st.TryNext(2 * time.Second)
		t.Logf("%s: session event %v %v after %v; CE=%q", loc, ok, m.Name, time.Since(t0), st.Resp.Header.Get("Content-Encoding"))
		mustPost(t, hc, ng.URL+"/sessions/"+session+"/chat", protocol.ChatPost{Name: "nginx", Text: "held back"}, nil)
		t0 = time.Now()
		m, ok = st.TryNext(2 * time.Second)
		t.Logf("   chat %v %v after %v", ok, m.Name, time.Since(t0))
		st.Close()
	}
}

package cluster

import (
	"bytes"
	"context"
	"net/http"
)

// runHere runs r on this node's API for session id, as a request that
// came from another node (it is not forwarded again), and keeps the answer.
// left reports that the session left this node before r ran: r found no
// session (404) and changed nothing.
func (n *Node) runHere(r *http.Request, id string) (rec *recorder, left bool) {
	rec = &recorder{header: http.Header{}}
	n.local.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, true)))
	_, here := n.hub.Session(id)
	return rec, !here && rec.status == http.StatusNotFound
}

// recorder keeps a forwarded request's answer for the reply.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

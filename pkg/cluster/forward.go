package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Forward runs r (whose body, already read, is body) on the node holding
// session id and copies its answer to w. It reports false when no node
// holds the session and none ever will: the caller answers 404. A session
// whose node died is recovered here first, and r runs here.
func (n *Node) Forward(w http.ResponseWriter, r *http.Request, id string, body []byte) bool {
	req := request{
		// One ReqID for every try: a node that ran it answers a try
		// again with its answer instead of running it twice.
		Op: "http", Key: key(id), ReqID: newID(), Method: r.Method,
		Path:        strings.Replace(r.URL.RequestURI(), "/"+id, "/"+idHole, 1),
		ContentType: r.Header.Get("Content-Type"), Body: body,
	}
	start := time.Now()
	inbox, err := n.newInbox()
	if err != nil {
		n.unavailable(w, err)
		return true
	}
	defer inbox.Unsubscribe()
	for range 3 {
		rep, found, err := n.ask(r.Context(), r.Context(), inbox, req)
		if err != nil {
			n.log.Debug("forwarded request failed", "session", protocol.ShortID(id), "method", r.Method, "after", time.Since(start), "err", err)
			n.unavailable(w, err)
			return true
		}
		if found {
			n.metrics.forwarded.Inc()
			for _, k := range []string{"Content-Type", "Retry-After", "Allow"} {
				if v := rep.Header.Get(k); v != "" {
					w.Header().Set(k, v)
				}
			}
			w.WriteHeader(rep.Status)
			w.Write(bytes.ReplaceAll(rep.Body, []byte(idHole), []byte(id)))
			return true
		}
		_, err = n.claimHere(r.Context(), id)
		switch {
		case errors.Is(err, broadcast.ErrUnknownSession):
			return false
		case errors.Is(err, errTryAgain):
			continue
		case err != nil:
			n.unavailable(w, err)
			return true
		}
		// Under the request's id, as a copy of it that reached the old
		// node runs there: a chat both runs store is stored once.
		r2 := r.Clone(withForwarded(r.Context(), req.ReqID))
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		rec, left := n.runHere(r2, id)
		if left {
			// Another node took it as soon as it landed here (a stream
			// that reached that node): the request changed nothing, and
			// goes after it.
			continue
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
		return true
	}
	n.unavailable(w, errors.New("session is moving between nodes"))
	return true
}

type forwardedKey struct{}

// Forwarded reports whether r came from another node, so the API does not
// forward it again.
func (n *Node) Forwarded(r *http.Request) bool {
	return r.Context().Value(forwardedKey{}) != nil
}

// unavailable answers 503 with Retry-After, as the API does when it is
// shutting down: the client tries again.
func (n *Node) unavailable(w http.ResponseWriter, err error) {
	n.metrics.unavailable.Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(1))
	w.WriteHeader(http.StatusServiceUnavailable)
	msg, _ := json.Marshal(map[string]string{"error": "cluster unavailable: " + err.Error()})
	w.Write(append(msg, '\n'))
}

package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// serve answers requests for this node's sessions until the node closes.
// Several run at once: a forwarded chat waits for its delivery.
func (n *Node) serve() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-n.reqs:
			n.answer(m)
		}
	}
}

// answer answers one request on a session's subject: a take hands the
// session over, an HTTP request runs here; "moved" if the session is not
// here (any more).
func (n *Node) answer(m *nats.Msg) {
	var req request
	if err := json.Unmarshal(m.Data, &req); err != nil {
		n.log.Warn("bad request on the broker", "err", err)
		return
	}
	if again, id := n.handedTo(req); again != nil {
		// Unless another node recovered the session meanwhile (this node
		// lost the broker with the reply, and stayed away): its record
		// names that node now.
		if !n.recordNamesMe(id) {
			again, _ = json.Marshal(reply{Moved: true})
		}
		n.respond(m, again)
		return
	}
	id, known := n.idOf(req.Key)
	var rep reply
	switch {
	case !known:
		rep.Moved = true
	case req.Op == "take":
		rep = n.handOver(req, id)
	case req.Op == "http":
		rep = n.runForwarded(req, id)
	default:
		return
	}
	data, _ := json.Marshal(rep)
	n.respond(m, data)
}

// respond sends a reply. One that fails because the connection to the
// broker is down (nothing is buffered meanwhile) is sent again once it is
// back, within requestTimeout: the asker waits that long for it. Without
// that, a forwarded bulk POST whose reply was lost with a broker was
// answered 503 only after the whole wait, while its transfer's chunks
// already streamed to a client that could not place them before the POST's
// answer: the client heard nothing for ten seconds.
func (n *Node) respond(m *nats.Msg, data []byte) {
	deadline := time.Now().Add(requestTimeout)
	for {
		err := m.Respond(data)
		if err == nil {
			n.replies.add(m.Reply, data)
			return
		}
		if !linkDown(err) || time.Now().After(deadline) || !n.awaitLink(n.ctx) {
			n.log.Warn("reply", "err", err)
			return
		}
		n.log.Debug("reply sent again, the broker back", "err", err)
	}
}

// linkDown reports whether a publish failed for want of a connection.
func linkDown(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionDraining)
}

// handOver exports session id for the take req and lets it go from here.
// The reply is kept for a while, for that take asked again (handedTo).
func (n *Node) handOver(req request, id string) reply {
	start := time.Now()
	n.records.lock(id)
	defer n.records.unlock(id)
	if waited := time.Since(start); waited > 100*time.Millisecond {
		n.log.Debug("take waited for the session's record write", "session", protocol.ShortID(id), "waited", waited)
	}
	st, err := n.hub.Export(id, int(n.nc.MaxPayload()*3/4), broadcast.Position{LastID: req.LastID, SentAt: req.SentAt})
	if errors.Is(err, broadcast.ErrSuperseded) {
		return reply{Superseded: true}
	}
	if err != nil {
		return reply{Moved: true}
	}
	n.unsubscribe(id, false)
	n.mu.Lock()
	delete(n.pending, id) // the new node writes the record now
	n.mu.Unlock()
	st.ID = "" // the taker knows it
	rep := reply{State: &st}
	if req.TakeID != "" {
		data, _ := json.Marshal(rep)
		n.keepHanded(req, data)
	}
	n.metrics.handedOver.Inc()
	n.log.Debug("session handed over", "session", protocol.ShortID(id))
	return rep
}

// runForwarded runs the HTTP request req, forwarded by another node, on the
// API here for session id.
func (n *Node) runForwarded(req request, id string) reply {
	if _, ok := n.hub.Session(id); !ok {
		return reply{Moved: true}
	}
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	path := strings.Replace(req.Path, idHole, id, 1)
	r, err := http.NewRequestWithContext(ctx, req.Method, path, bytes.NewReader(req.Body))
	if err != nil {
		return reply{Status: http.StatusBadRequest, Body: []byte(`{"error":"bad forwarded request"}`)}
	}
	if req.ContentType != "" {
		r.Header.Set("Content-Type", req.ContentType)
	}
	n.metrics.served.Inc()
	rec, left := n.runHere(r, id)
	if left {
		return reply{Moved: true} // it is elsewhere now
	}
	return reply{Status: rec.status, Header: rec.header, Body: bytes.ReplaceAll(rec.body.Bytes(), []byte(id), []byte(idHole))}
}

// recordNamesMe reports whether session id's record names this node.
func (n *Node) recordNamesMe(id string) bool {
	ctx, cancel := context.WithTimeout(n.ctx, recordWait)
	defer cancel()
	rec, _, found, err := n.readRecord(ctx, id)
	return err == nil && found && rec.Node == n.cfg.Node
}

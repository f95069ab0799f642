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

// A run is a request run here (or being run), by its once(): a copy of it
// sent again by its asker gets its answer rather than running it again.
type run struct {
	done chan struct{} // closed once data is set
	data []byte        // the answer; nil: none (or sent by another node)
	key  string        // the session's; empty for a take
	// finished says data is set, for ranFor. Guarded by Node.mu.
	finished bool
	// elsewhere says it was still running on the session's old node when
	// the session came here (adoptRuns): no answer will come from here.
	elsewhere bool
}

// keepRun is how long a forwarded request's answer is kept for its copies:
// its asker waits that long at most.
const keepRun = requestTimeout

// A job is a request for the workers.
type job struct {
	m    *nats.Msg
	req  request
	run  *run // its run when it is held here, or a copy of one
	dup  bool // a copy of run: send run's answer
	held bool // the session was held here when the request came
}

// triage takes the requests on session subjects as they come, tells the
// asker at once when the session is held here (so it waits for the answer
// rather than taking another node's "moved" for it), and hands them to the
// workers. Runs in its own goroutine until the node closes.
func (n *Node) triage() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.forgetRuns(now)
		case m := <-n.reqs:
			j, ok := n.admit(m)
			if !ok {
				continue
			}
			select {
			case n.work <- j:
			case <-n.ctx.Done():
				n.respond(m, n.movedReply())
				return
			}
		}
	}
}

// admit makes a job of m, sending the word that the session is held here
// when it is.
func (n *Node) admit(m *nats.Msg) (job, bool) {
	var req request
	if err := json.Unmarshal(m.Data, &req); err != nil {
		n.log.Warn("bad request on the broker", "err", err)
		return job{}, false
	}
	if req.From == n.cfg.Node {
		// Its own request, on a subscription lingering here after the
		// session left: the session is elsewhere, or it would not ask.
		return job{}, false
	}
	// Whether the request may run here is decided now, not when a worker
	// gets to it: meanwhile its asker may have gone on without it (another
	// node answered) and the session come back here, and a take run then
	// would hand it to nobody.
	j := job{m: m, req: req, held: n.holds(req.Key)}
	once := req.once()
	n.mu.Lock()
	r, dup := n.runs[once]
	n.mu.Unlock()
	switch {
	case once == "":
	case dup && !(r.elsewhere && j.held):
		j.run, j.dup = r, true
	case j.held:
		// New here; or still running on the old node when the session
		// left it, and asked again. That run most often found the session
		// gone and changed nothing, and its asker, told "moved", waits for
		// an answer from here. So it runs here too. Had it run, the asker
		// takes whichever answer comes first: a chat or published event
		// is stored once (under the request's id, stream.go), a tune is
		// the same twice; a bulk request starts a second transfer, which
		// the client takes for someone else's.
		j.run = &run{done: make(chan struct{})}
		if req.Op != "take" {
			j.run.key = req.Key
		}
		n.mu.Lock()
		n.runs[once] = j.run
		n.mu.Unlock()
	}
	if j.run != nil {
		held, _ := json.Marshal(reply{Node: n.cfg.Node, Held: true})
		_ = m.Respond(held) // lost with the link: the asker sends again
	}
	return j, true
}

// holds reports whether the session of key k is held here.
func (n *Node) holds(k string) bool {
	n.mu.Lock()
	s, ok := n.subs[k]
	ok = ok && s.retire == nil
	n.mu.Unlock()
	if !ok {
		return false
	}
	_, ok = n.hub.Session(s.id)
	return ok
}

// forgetRuns forgets the runs whose answers were kept long enough.
func (n *Node) forgetRuns(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.kept) > 0 && now.After(n.kept[0].until) {
		if n.runs[n.kept[0].once] == n.kept[0].run {
			delete(n.runs, n.kept[0].once)
		}
		n.kept = n.kept[1:]
	}
}

// A keptRun is a run forgotten after until.
type keptRun struct {
	once  string
	run   *run
	until time.Time
}

// ranFor returns the forwarded requests run here for the session of key k
// a moment ago, for its new node: their answers by ReqID, and nil for those
// still running (the asker gets their answer from here).
func (n *Node) ranFor(k string) map[string][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ran map[string][]byte
	for once, r := range n.runs {
		if r.key != k {
			continue
		}
		if ran == nil {
			ran = make(map[string][]byte)
		}
		if r.finished {
			ran[once] = r.data
		} else {
			ran[once] = nil
		}
	}
	return ran
}

// adoptRuns keeps the answers ran, handed over with the session of key k,
// as if they were run here: a copy of one of them sent here gets its
// answer, or none when it was still running on the old node (which sends
// it).
func (n *Node) adoptRuns(k string, ran map[string][]byte) {
	if len(ran) == 0 {
		return
	}
	until := time.Now().Add(keepRun)
	n.mu.Lock()
	defer n.mu.Unlock()
	for once, data := range ran {
		if _, ok := n.runs[once]; ok {
			continue
		}
		r := &run{done: make(chan struct{}), data: data, key: k, finished: true, elsewhere: data == nil}
		close(r.done)
		n.runs[once] = r
		n.kept = append(n.kept, keptRun{once: once, run: r, until: until})
	}
}

// serve answers requests for this node's sessions until the node closes.
// Several run at once: a forwarded chat waits for its delivery.
func (n *Node) serve() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case j := <-n.work:
			n.answer(j)
		}
	}
}

// answer answers one request on a session's subject: a take hands the
// session over, an HTTP request runs here; "moved" if the session is not
// here (any more).
func (n *Node) answer(j job) {
	if j.dup {
		select {
		case <-j.run.done:
		case <-n.ctx.Done():
			return
		}
		if j.run.data != nil {
			n.respond(j.m, j.run.data)
		}
		return
	}
	data := n.reply(j.req, j.held)
	if j.run != nil {
		j.run.data = data
		close(j.run.done)
		once := j.req.once()
		n.mu.Lock()
		j.run.finished = true
		if j.req.Op == "take" {
			// A take asked again after this finds the reply kept on
			// the lingering subscription instead (handedTo).
			if n.runs[once] == j.run {
				delete(n.runs, once)
			}
		} else {
			n.kept = append(n.kept, keptRun{once: once, run: j.run, until: time.Now().Add(keepRun)})
		}
		n.mu.Unlock()
	}
	if data != nil {
		n.respond(j.m, data)
	}
}

// reply is the answer to req, which came while the session was held here
// or not; nil: none.
func (n *Node) reply(req request, held bool) []byte {
	if again, id := n.handedTo(req); again != nil {
		// Unless another node recovered the session meanwhile (this node
		// lost the broker with the reply, and stayed away): its record
		// names that node now.
		if !n.recordNamesMe(id) {
			again = n.movedReply()
		}
		return again
	}
	id, known := n.idOf(req.Key)
	var rep reply
	switch {
	case !known || !held:
		rep.Moved = true
	case req.Op == "take":
		rep = n.handOver(req, id)
	case req.Op == "http":
		rep = n.runForwarded(req, id)
	default:
		return nil
	}
	rep.Node = n.cfg.Node
	data, _ := json.Marshal(rep)
	return data
}

// movedReply says the session is not here.
func (n *Node) movedReply() []byte {
	data, _ := json.Marshal(reply{Node: n.cfg.Node, Moved: true})
	return data
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
	parks := n.parks.Load()
	for {
		err := m.Respond(data)
		if err == nil {
			n.replies.add(m.Reply, data, parks)
			return
		}
		if !linkDown(err) || time.Now().After(deadline) || !n.awaitLink(n.ctx) {
			n.log.Warn("reply", "err", err)
			return
		}
		if n.parks.Load() != parks {
			// Parked meanwhile: see sentReply.
			n.log.Debug("reply dropped, the sessions parked since", "err", err)
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
	rep := reply{Node: n.cfg.Node, State: &st, Ran: n.ranFor(req.Key)}
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
	ctx, cancel := context.WithTimeout(withForwarded(n.ctx, req.ReqID), 30*time.Second)
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

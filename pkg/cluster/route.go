package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A request is what a node sends on a session's subject. Session ids never
// cross the broker (they are capabilities): the session is named by its key,
// and the path and answer carry "{id}" where the id was.
type request struct {
	Op          string  `json:"op"` // "http" or "take"
	Key         string  `json:"key"`
	LastID      *uint64 `json:"lastId,omitempty"` // of the stream a take is for
	TakeID      string  `json:"takeId,omitempty"` // one take, the same when it is asked again
	SentAt      int64   `json:"sentAt,omitempty"` // of that stream's request
	Method      string  `json:"method,omitempty"`
	Path        string  `json:"path,omitempty"` // with the query
	ContentType string  `json:"contentType,omitempty"`
	Body        []byte  `json:"body,omitempty"`
}

// A reply answers a request. Moved says the session is no longer here:
// ask again.
type reply struct {
	Moved      bool                    `json:"moved,omitempty"`
	Superseded bool                    `json:"superseded,omitempty"` // see broadcast.ErrSuperseded
	Status     int                     `json:"status,omitempty"`
	Header     http.Header             `json:"header,omitempty"`
	Body       []byte                  `json:"body,omitempty"`
	State      *broadcast.SessionState `json:"state,omitempty"` // its ID left out
}

// idHole stands for the session id in what crosses the broker.
const idHole = "{id}"

type forwardedKey struct{}

// Forwarded reports whether r came from another node, so the API does not
// forward it again.
func (n *Node) Forwarded(r *http.Request) bool {
	return r.Context().Value(forwardedKey{}) != nil
}

// A subscription is a session's subject answered here. After the session
// leaves, it lingers for a while (retire), answering "moved": a request the
// broker routed here just before it heard of the unsubscription would
// otherwise be dropped and its sender would wait for nothing. Meanwhile the
// node tells others asking about the session that it is moving (or ended),
// so none of them recovers it as if this node had died.
type subscription struct {
	id     string
	sub    *nats.Subscription
	retire *time.Timer // set once the session left
	ended  bool        // it left by ending, not by moving
	// handed is the reply that handed the session over, to the take
	// takeID: while the subscription lingers, that take asked again (its
	// node lost the broker, and the reply with it) gets the same reply.
	takeID string
	handed []byte
}

// linger is how long a subscription outlives its session here.
const linger = 5 * time.Second

func (n *Node) subscribe(id string) error {
	k := key(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		// Its requests would find no worker to answer them.
		return fmt.Errorf("%w: node closing", ErrUnavailable)
	}
	if s, ok := n.subs[k]; ok {
		if s.retire != nil {
			s.retire.Stop() // back before it retired
			s.retire, s.ended = nil, false
			s.takeID, s.handed = "", nil
		}
		return nil
	}
	// One queue group for every node: each request reaches one node, so a
	// lingering subscription and the session's new node never both run it.
	sub, err := n.nc.ChanQueueSubscribe(n.subject(id), "owner", n.reqs)
	if err != nil {
		return fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	n.subs[k] = &subscription{id: id, sub: sub}
	return nil
}

// unsubscribe retires a session's subscription: it stops after linger.
func (n *Node) unsubscribe(id string, ended bool) {
	k := key(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.subs[k]
	if !ok || s.retire != nil {
		return
	}
	s.ended = ended
	s.retire = time.AfterFunc(linger, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.subs[k] == s && s.retire != nil {
			_ = s.sub.Unsubscribe()
			delete(n.subs, k)
		}
	})
}

// Where a session is, as this node knows it (the answer to a node query).
const (
	held    = "held"     // here
	moving  = "moving"   // it left for another node a moment ago
	ended   = "ended"    // it ended here a moment ago
	unknown = "not held" // this node knows nothing of it
)

// whereIs says whether the session of key k is here.
func (n *Node) whereIs(k string) string {
	n.mu.Lock()
	s, ok := n.subs[k]
	var id string
	var retiring, hasEnded bool
	if ok {
		// Read under n.mu: subscribe and unsubscribe change them.
		id, retiring, hasEnded = s.id, s.retire != nil, s.ended
	}
	n.mu.Unlock()
	switch {
	case !ok:
		return unknown
	case !retiring:
		if _, here := n.hub.Session(id); here {
			return held
		}
		return moving // between its import and its subscription, or back
	case hasEnded:
		return ended
	}
	return moving
}

// handedTo returns the reply that handed a session over to req, and the
// session's id, if req is that take asked again; nil otherwise.
func (n *Node) handedTo(req request) ([]byte, string) {
	if req.Op != "take" || req.TakeID == "" {
		return nil, ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.subs[req.Key]; ok && s.retire != nil && s.takeID == req.TakeID {
		return s.handed, s.id
	}
	return nil, ""
}

// recordNamesMe reports whether session id's record names this node.
func (n *Node) recordNamesMe(id string) bool {
	ctx, cancel := context.WithTimeout(n.ctx, recordWait)
	defer cancel()
	rec, _, found, err := n.readRecord(ctx, id)
	return err == nil && found && rec.Node == n.cfg.Node
}

// idOf is the id of the session of key k, if this node answers for it.
func (n *Node) idOf(k string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.subs[k]
	if !ok {
		return "", false
	}
	return s.id, true
}

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
		if err := m.Respond(again); err != nil {
			n.log.Warn("reply", "err", err)
		}
		return
	}
	var rep reply
	id, known := n.idOf(req.Key)
	switch {
	case !known:
		rep.Moved = true
	case req.Op == "take":
		n.records.Lock()
		defer n.records.Unlock()
		st, err := n.hub.Export(id, int(n.nc.MaxPayload()*3/4), broadcast.Position{LastID: req.LastID, SentAt: req.SentAt})
		if errors.Is(err, broadcast.ErrSuperseded) {
			rep.Superseded = true
			break
		}
		if err != nil {
			rep.Moved = true
			break
		}
		n.unsubscribe(id, false)
		n.mu.Lock()
		delete(n.pending, id) // the new node writes the record now
		n.mu.Unlock()
		st.ID = "" // the taker knows it
		rep.State = &st
		n.metrics.handedOver.Inc()
		n.log.Debug("session handed over", "session", protocol.ShortID(id))
		if req.TakeID != "" {
			data, _ := json.Marshal(rep)
			n.mu.Lock()
			if s, ok := n.subs[req.Key]; ok && s.retire != nil {
				s.takeID, s.handed = req.TakeID, data
			}
			n.mu.Unlock()
			if err := m.Respond(data); err != nil {
				n.log.Warn("reply", "err", err)
			}
			return
		}
	case req.Op == "http":
		if _, ok := n.hub.Session(id); !ok {
			rep.Moved = true
			break
		}
		ctx, cancel := context.WithTimeout(context.WithValue(n.ctx, forwardedKey{}, true), 30*time.Second)
		path := strings.Replace(req.Path, idHole, id, 1)
		r, err := http.NewRequestWithContext(ctx, req.Method, path, bytes.NewReader(req.Body))
		if err != nil {
			cancel()
			rep.Status, rep.Body = http.StatusBadRequest, []byte(`{"error":"bad forwarded request"}`)
			break
		}
		if req.ContentType != "" {
			r.Header.Set("Content-Type", req.ContentType)
		}
		rec := &recorder{header: http.Header{}}
		n.metrics.served.Inc()
		n.local.ServeHTTP(rec, r)
		cancel()
		if _, ok := n.hub.Session(id); !ok && rec.status == http.StatusNotFound {
			// It left while the request waited: it is elsewhere now.
			rep.Moved = true
			break
		}
		rep.Status, rep.Header = rec.status, rec.header
		rep.Body = bytes.ReplaceAll(rec.body.Bytes(), []byte(id), []byte(idHole))
	default:
		return
	}
	data, _ := json.Marshal(rep)
	if err := m.Respond(data); err != nil {
		n.log.Warn("reply", "err", err)
	}
}

// ask sends req on the session's subject and returns the reply of the node
// holding it. While nobody answers, or only the old node of a session that
// moved a moment ago ("moved"), it asks again, for up to Claim; then found
// is false, and claim decides, from the session's record and its node's
// word, whether the session is moving (ask again later) or lost (recover
// it). A "moved" alone decides nothing: the new node may have died since.
//
// origin is the context of the client's request: once it ends, no new
// request is sent (a take asked for by a client that left would move the
// session away from where that client is now), but one sent is waited for
// under ctx.
func (n *Node) ask(origin, ctx context.Context, req request) (rep reply, found bool, err error) {
	data, _ := json.Marshal(req)
	subject := n.cfg.Prefix + ".session." + req.Key
	deadline := time.Now().Add(n.cfg.Claim)
	for try, wait := 1, 5*time.Millisecond; ; try, wait = try+1, min(2*wait, 100*time.Millisecond) {
		if origin.Err() != nil {
			return reply{}, false, fmt.Errorf("%w: the client left: %v", ErrUnavailable, origin.Err())
		}
		link := n.linkContext()
		timeout := requestTimeout
		if req.Op == "take" {
			timeout = takeTimeout
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		stop := context.AfterFunc(link, cancel)
		m, err := n.nc.RequestWithContext(rctx, subject, data)
		stop()
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && link.Err() != nil:
			return reply{}, false, fmt.Errorf("%w: %w: %v", ErrUnavailable, errLinkLost, err)
		case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			return reply{}, false, fmt.Errorf("%w: %w", ErrUnavailable, errNoReply)
		case err == nil:
			rep = reply{} // Unmarshal keeps fields the new reply omits
			if err := json.Unmarshal(m.Data, &rep); err != nil {
				return reply{}, false, fmt.Errorf("cluster: bad reply: %w", err)
			}
			if !rep.Moved {
				return rep, true, nil
			}
		case errors.Is(err, nats.ErrNoResponders):
		default:
			return reply{}, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		// Enough tries, not only enough time: on a busy machine a few slow
		// round trips must not pass for a dead node.
		if time.Now().After(deadline) && try >= 8 {
			return reply{}, false, nil
		}
		select {
		case <-ctx.Done():
			return reply{}, false, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Forward runs r (whose body, already read, is body) on the node holding
// session id and copies its answer to w. It reports false when no node
// holds the session and none ever will: the caller answers 404. A session
// whose node died is recovered here first, and r runs here.
func (n *Node) Forward(w http.ResponseWriter, r *http.Request, id string, body []byte) bool {
	req := request{
		Op: "http", Key: key(id), Method: r.Method,
		Path:        strings.Replace(r.URL.RequestURI(), "/"+id, "/"+idHole, 1),
		ContentType: r.Header.Get("Content-Type"), Body: body,
	}
	for range 3 {
		rep, found, err := n.ask(r.Context(), r.Context(), req)
		if err != nil {
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
		r2 := r.Clone(context.WithValue(r.Context(), forwardedKey{}, true))
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		rec := &recorder{header: http.Header{}}
		n.local.ServeHTTP(rec, r2)
		if _, ok := n.hub.Session(id); !ok && rec.status == http.StatusNotFound {
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

// Take brings session id to this node for a stream that arrived here: its
// node hands it over, history and all; if that node died, it is recovered
// from its record. broadcast.ErrUnknownSession if no node has it;
// broadcast.ErrSuperseded if the stream's request (at p) came late.
func (n *Node) Take(ctx context.Context, id string, p broadcast.Position) (*broadcast.Session, error) {
	return n.locked(ctx, id, func(origin, ctx context.Context) (*broadcast.Session, error) {
		return n.take(origin, ctx, id, p)
	})
}

func (n *Node) take(origin, ctx context.Context, id string, p broadcast.Position) (*broadcast.Session, error) {
	req := request{Op: "take", Key: key(id), LastID: p.LastID, SentAt: p.SentAt, TakeID: newTakeID()}
	for tries, again := 0, 0; tries < 3; {
		rep, found, err := n.ask(origin, ctx, req)
		if (errors.Is(err, errLinkLost) && n.awaitLink(ctx) || errors.Is(err, errNoReply)) && again < 3 {
			// The take may have been answered, the session handed over,
			// and the reply lost with a broker (this node's, or the old
			// node's): asked again under the same take id within linger,
			// the old node sends it again.
			origin = ctx // asked already: see it through
			again++
			continue
		}
		tries++
		if err != nil {
			return nil, err
		}
		if found && rep.Superseded {
			return nil, broadcast.ErrSuperseded
		}
		if found {
			if rep.State == nil {
				return nil, errors.New("cluster: take answered without a state")
			}
			rep.State.ID = id
			s, err := n.hub.Import(*rep.State)
			if err != nil {
				// Lost until a node recovers it from its record.
				n.log.Warn("session taken but not imported", "session", protocol.ShortID(id), "err", err)
				return nil, fmt.Errorf("cluster: import: %w", err)
			}
			if err := n.register(ctx, s, true); err != nil {
				n.log.Warn("session taken but not registered", "session", protocol.ShortID(id), "err", err)
				n.release(id)
				return nil, err
			}
			n.metrics.taken.Inc()
			n.log.Debug("session taken over", "session", protocol.ShortID(id))
			return s, nil
		}
		s, err := n.claim(ctx, id)
		if errors.Is(err, errTryAgain) {
			// Given up on the old node: a reply it kept for this take
			// must not be taken now (the session may be elsewhere).
			req.TakeID = newTakeID()
			continue
		}
		return s, err
	}
	return nil, fmt.Errorf("%w: session is moving between nodes", ErrUnavailable)
}

// lock lets one take or claim of a session run on this node at a time. It
// returns the session instead when another one brought it here meanwhile.
func (n *Node) lock(ctx context.Context, id string) (release func(), s *broadcast.Session) {
	for {
		if s, ok := n.hub.Session(id); ok {
			return nil, s
		}
		n.mu.Lock()
		busy, ok := n.taking[id]
		if !ok {
			done := make(chan struct{})
			n.taking[id] = done
			n.mu.Unlock()
			return func() {
				n.mu.Lock()
				delete(n.taking, id)
				n.mu.Unlock()
				close(done)
			}, nil
		}
		n.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, nil
		}
	}
}

var errTryAgain = errors.New("try again")

// errNoReply says a request's reply did not come in time.
var errNoReply = errors.New("no reply")

// takeTimeout bounds the wait for a take's reply: the old node answers at
// once but for a record write under way (recordWait). Well within linger,
// so that a take asked again after a lost reply finds the reply kept.
const takeTimeout = recordWait + time.Second

// errLinkLost says the connection to the broker was lost while a request
// waited for its reply.
var errLinkLost = errors.New("broker connection lost")

// awaitLink waits up to requestTimeout for the connection to the broker to
// be back, and reports whether it is.
func (n *Node) awaitLink(ctx context.Context) bool {
	deadline := time.Now().Add(requestTimeout)
	for !n.nc.IsConnected() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// newTakeID names one take.
func newTakeID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// requestTimeout bounds one request to another node: a forwarded chat waits
// for its delivery, at most 5 s (broadcast.Hub.Chat), plus the trip.
const requestTimeout = 10 * time.Second

// claimHere is claim under the session's lock on this node.
func (n *Node) claimHere(ctx context.Context, id string) (*broadcast.Session, error) {
	return n.locked(ctx, id, func(_, ctx context.Context) (*broadcast.Session, error) {
		return n.claim(ctx, id)
	})
}

// locked runs bring, which brings session id here, under the session's lock
// on this node, unless the session is here already. bring gets the client's
// context, origin, and one detached from it: once it has asked for the
// session, it runs to the end even if the client leaves, since the old node
// lets the session go when asked and it must land here or be nowhere.
func (n *Node) locked(ctx context.Context, id string, bring func(origin, detached context.Context) (*broadcast.Session, error)) (*broadcast.Session, error) {
	release, s := n.lock(ctx, id)
	if s != nil {
		return s, nil
	}
	if release == nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	defer release()
	// Its old node lets the session go when asked: bring it only if it can
	// land here. (Import and Recover never refuse it, for the moment between
	// this check and its arrival, while the hub starts closing, say.)
	if err := n.hub.Room(); err != nil {
		return nil, err
	}
	detached, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*requestTimeout)
	defer cancel()
	return bring(ctx, detached)
}

// claim makes a session whose node stopped answering live here, from its
// record. It does not if the record is gone (the session ended), if its node
// still answers on the broker (it is only slow, or re-subscribing after the
// broker came back), or if another node claimed it first.
func (n *Node) claim(ctx context.Context, id string) (*broadcast.Session, error) {
	rec, rev, found, err := n.readRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, broadcast.ErrUnknownSession
	}
	// The recorded node may be alive: still holding the session (it is
	// re-subscribing after the broker came back, say), handing it over
	// this moment, or just done with it. Only a node that is gone, or that
	// knows nothing of the session, lets it be recovered.
	where := unknown
	if rec.Node == n.cfg.Node {
		where = n.whereIs(key(id))
	} else {
		var err error
		if where, err = n.askNode(ctx, rec.Node, id); err != nil {
			return nil, err
		}
	}
	n.log.Debug("claim", "session", protocol.ShortID(id), "recorded", rec.Node, "where", where)
	switch where {
	case held, moving:
		return nil, errTryAgain
	case ended:
		return nil, broadcast.ErrUnknownSession
	}
	mine := rec
	mine.Node = n.cfg.Node
	data, _ := json.Marshal(mine)
	if _, err := n.kv.Update(ctx, key(id), data, rev); err != nil {
		return nil, errTryAgain // somebody else changed it: look again
	}
	// Chat and published events the client may have had from the lost
	// node must not come again, though this node may deliver them after
	// the lost one did: the session starts after the last of each the
	// broker has.
	var lastChat int64
	if info, err := n.chatStream.Info(ctx); err == nil {
		lastChat = int64(info.State.LastSeq)
	}
	var lastPub uint64
	if info, err := n.pubStream.Info(ctx); err == nil {
		lastPub = info.State.LastSeq
	}
	s, err := n.hub.Recover(id, rec.Channels, rec.Reserved, lastChat, lastPub)
	if err != nil {
		return nil, fmt.Errorf("cluster: recover: %w", err)
	}
	if err := n.register(ctx, s, true); err != nil {
		n.release(id)
		return nil, err
	}
	n.metrics.recovered.Inc()
	n.log.Info("session recovered from a lost node", "session", protocol.ShortID(id), "lost", rec.Node)
	return s, nil
}

// askNode asks node where session id is. A node that has no responder is
// asked again for Claim: a node whose broker died is away for a moment
// while it reconnects to another, and one cut off for longer parks its
// sessions (partition.go) before this gives up on it.
func (n *Node) askNode(ctx context.Context, node, id string) (string, error) {
	deadline := time.Now().Add(n.cfg.Claim)
	for {
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		m, err := n.nc.RequestWithContext(pctx, n.nodeSubject(node), []byte(key(id)))
		cancel()
		switch {
		case err == nil:
			return string(m.Data), nil
		case !errors.Is(err, nats.ErrNoResponders):
			return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		case time.Now().After(deadline):
			return unknown, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// release removes a session that could not be made reachable here from the
// hub, leaving its record: another node may recover it from there later.
// (Hub.Drop would end the session everywhere.)
func (n *Node) release(id string) {
	_, _ = n.hub.Export(id, 0, broadcast.Position{})
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

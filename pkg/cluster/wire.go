package cluster

import (
	"net/http"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// A request is what a node sends on a session's subject. Session ids never
// cross the broker (they are capabilities): the session is named by its key,
// and the path and answer carry "{id}" where the id was.
type request struct {
	Op          string  `json:"op"`             // "http" or "take"
	From        string  `json:"from,omitempty"` // the asking node
	Key         string  `json:"key"`
	LastID      *uint64 `json:"lastId,omitempty"` // of the stream a take is for
	TakeID      string  `json:"takeId,omitempty"` // one take, the same when it is asked again
	ReqID       string  `json:"reqId,omitempty"`  // one forwarded request, the same when it is sent again
	SentAt      int64   `json:"sentAt,omitempty"` // of that stream's request
	Method      string  `json:"method,omitempty"`
	Path        string  `json:"path,omitempty"` // with the query
	ContentType string  `json:"contentType,omitempty"`
	Body        []byte  `json:"body,omitempty"`
}

// A reply answers a request. Moved says the session is no longer here:
// ask again. Held is not an answer but word that the answer follows: the
// session is held here and the request is being run.
type reply struct {
	Node       string                  `json:"node,omitempty"` // the node replying
	Held       bool                    `json:"held,omitempty"`
	Moved      bool                    `json:"moved,omitempty"`
	Superseded bool                    `json:"superseded,omitempty"` // see broadcast.ErrSuperseded
	Status     int                     `json:"status,omitempty"`
	Header     http.Header             `json:"header,omitempty"`
	Body       []byte                  `json:"body,omitempty"`
	State      *broadcast.SessionState `json:"state,omitempty"` // its ID left out
	// Ran are the answers to forwarded requests the old node ran for the
	// session a moment ago, by ReqID, handed over with it (null: still
	// running there): one of them sent again to the new node is not run
	// again.
	Ran map[string][]byte `json:"ran,omitempty"`
}

// idHole stands for the session id in what crosses the broker.
const idHole = "{id}"

// once names the request across its copies: a node runs a request once,
// however many copies of it reach it (the asker sends it again while no
// node has said it holds the session).
func (r request) once() string {
	if r.Op == "take" {
		return "take " + r.TakeID
	}
	return r.ReqID
}

// Package baseline holds the yardsticks of the load benchmarks: small
// SSE servers that do the same work as xhrsse (channel ticks at the same
// rates, chat fanned out to every session) and answer the API subset the load
// generator uses:
//
//	GET  /channels                  the channels and their rates
//	POST /sessions                  {"channels":[…]} → 201 {"session":ID,…}
//	GET  /events?session=ID         session, channel ticks and chat events
//	POST /sessions/ID/chat          {"name":…,"text":…} → 202 {"id":N}
//
// Raw is what a careful engineer writes with net/http alone (each stream
// drains its queue into one write and one flush); RawNaive the same writing
// and flushing once per event; R3labs is what a typical user of
// github.com/r3labs/sse/v2 writes. All are meant to be honest and minimal:
// no xhrsse features, and no sabotage either.
package baseline

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A Server is a running baseline. Its goroutines (channel tickers, and for
// r3labs its per-stream goroutines) stop in Close, which must be called after
// the http.Server serving it has closed its connections.
type Server interface {
	http.Handler
	Close()
}

// channelSet is the channels of a baseline: names, rates, repertoires, and
// their description for GET /channels.
type channelSet struct {
	cfgs  []broadcast.ChannelConfig
	index map[string]int
	info  []protocol.Channel
}

func newChannelSet(cfgs []broadcast.ChannelConfig) (*channelSet, error) {
	if len(cfgs) == 0 {
		cfgs = broadcast.DefaultChannels()
	}
	if len(cfgs) > 64 {
		return nil, errors.New("baseline: at most 64 channels")
	}
	cs := &channelSet{cfgs: cfgs, index: map[string]int{}}
	for i, c := range cfgs {
		if c.Rate <= 0 || len(c.Repertoire) == 0 || !protocol.ValidEventName(c.Name) {
			return nil, fmt.Errorf("baseline: bad channel %q", c.Name)
		}
		cs.index[c.Name] = i
		cs.info = append(cs.info, protocol.Channel{
			Name: c.Name, Title: c.Title, Kind: protocol.KindTicker, Rate: c.Rate,
			Repertoire: string(c.Repertoire), Width: protocol.RuneWidth(c.Repertoire[0]),
		})
	}
	return cs, nil
}

// mask turns channel names into a bit set, refusing unknown names.
func (cs *channelSet) mask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		i, ok := cs.index[n]
		if !ok {
			return 0, fmt.Errorf("unknown channel %q", n)
		}
		m |= 1 << i
	}
	return m, nil
}

func (cs *channelSet) names(m uint64) []string {
	out := []string{}
	for i, c := range cs.cfgs {
		if m&(1<<i) != 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// run starts one ticker goroutine per channel; each tick calls publish with
// the channel's index and one random character. They stop when ctx ends.
func (cs *channelSet) run(ctx context.Context, wg *sync.WaitGroup, publish func(index int, data []byte)) {
	for i, c := range cs.cfgs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			t := time.NewTicker(time.Duration(float64(time.Second) / c.Rate))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					r := c.Repertoire[rng.IntN(len(c.Repertoire))]
					publish(i, utf8.AppendRune(nil, r))
				}
			}
		})
	}
}

func (cs *channelSet) serveChannels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, cs.info)
}

// readJSON decodes a small JSON body; an empty body leaves v as it is.
func readJSON(r *http.Request, v any) error {
	err := json.NewDecoder(io.LimitReader(r.Body, protocol.DefaultMaxBody)).Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// sessionRequest reads a POST /sessions body and turns its channels into a
// bit set; when it cannot, it has answered and ok is false.
func (cs *channelSet) sessionRequest(w http.ResponseWriter, r *http.Request) (mask uint64, ok bool) {
	var req protocol.CreateSession
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, false
	}
	mask, err := cs.mask(req.Channels)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return 0, false
	}
	return mask, true
}

// chatRequest reads a POST /sessions/ID/chat: nextID hands out the chat's
// id and reports whether the session exists. It returns the chat event's
// data and id; when it cannot, it has answered and ok is false.
func chatRequest(w http.ResponseWriter, r *http.Request, nextID func(session string) (int64, bool)) (data []byte, id int64, ok bool) {
	id, known := nextID(r.PathValue("id"))
	if !known {
		writeError(w, http.StatusNotFound, "unknown session")
		return nil, 0, false
	}
	data, err := chatData(r, id)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, 0, false
	}
	return data, id, true
}

// refuseStream answers a GET /events that cannot be served: an unknown
// session, one whose stream is open already, or a baseline shutting down.
// It reports whether it answered.
func refuseStream(w http.ResponseWriter, known, busy, closed bool) bool {
	switch {
	case !known:
		writeError(w, http.StatusNotFound, "unknown session")
	case busy:
		writeError(w, http.StatusConflict, "session already has a stream")
	case closed:
		writeError(w, http.StatusServiceUnavailable, "shutting down")
	default:
		return false
	}
	return true
}

// chatData checks a chat POST and encodes the chat event's data.
func chatData(r *http.Request, id int64) ([]byte, error) {
	var req protocol.ChatPost
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if err := broadcast.CheckChat(req.Name, req.Text, protocol.DefaultMaxChatText); err != nil {
		return nil, err
	}
	if req.Name == "" {
		req.Name = "anon"
	}
	return json.Marshal(protocol.Chat{ID: id, Name: req.Name, Text: req.Text, At: time.Now().UTC()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, protocol.Error{Error: msg})
}

// newID returns a session id of 128 random bits, like xhrsse's.
func newID() string { return crand.Text() }

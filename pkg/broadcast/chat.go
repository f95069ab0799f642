package broadcast

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// CheckChat validates a chat message: valid UTF-8, no NUL, name at most
// protocol.MaxChatName characters, text non-empty and at most max
// characters. Anything else (markup, escapes, controls) is data and is
// relayed byte for byte; clients display it inert.
func CheckChat(name, text string, max int) error {
	switch {
	case !utf8.ValidString(name) || !utf8.ValidString(text):
		return fmt.Errorf("%w: chat must be valid UTF-8", ErrBadRequest)
	case strings.IndexByte(name, 0) >= 0 || strings.IndexByte(text, 0) >= 0:
		return fmt.Errorf("%w: chat must not contain NUL", ErrBadRequest)
	case utf8.RuneCountInString(name) > protocol.MaxChatName:
		return fmt.Errorf("%w: name longer than %d characters", ErrBadRequest, protocol.MaxChatName)
	case text == "":
		return fmt.Errorf("%w: empty chat text", ErrBadRequest)
	case utf8.RuneCountInString(text) > max:
		return fmt.Errorf("%w: chat text longer than %d characters", ErrBadRequest, max)
	}
	return nil
}

// Chat broadcasts a message from s to every session, live ones and those
// waiting for a stream to come back, and keeps it in the history. It returns
// once the message is in the history of every session of this hub, s's
// included; in a cluster, once the relay has it and this hub delivered it.
func (h *Hub) Chat(ctx context.Context, s *Session, name, text string) (protocol.Chat, error) {
	if err := CheckChat(name, text, h.opts.maxChatText); err != nil {
		return protocol.Chat{}, err
	}
	if name == "" {
		name = "anon"
	}
	s.mu.Lock()
	gone := s.gone
	s.mu.Unlock()
	if gone {
		return protocol.Chat{}, ErrUnknownSession
	}
	now := time.Now()
	if err := allowAt(s.chat, "chat", now); err != nil {
		h.stats.chatLimited.Add(1)
		return protocol.Chat{}, err
	}
	msg := protocol.Chat{Name: name, Text: text, At: now.UTC()}
	if r := h.opts.relay; r != nil {
		// A chat refused is one not sent (PROTOCOL.md): a hub shutting
		// down refuses before publishing, and once the broker has the
		// message nothing turns it into a refusal, not even the client
		// going away.
		if h.ctx.Err() != nil {
			return protocol.Chat{}, ErrClosed
		}
		sctx, cancel := relaySendContext(ctx)
		defer cancel()
		id, err := r.PublishChat(sctx, msg)
		if err != nil {
			return protocol.Chat{}, err
		}
		msg.ID = id
		// The answer comes after the message is in s's history, as on a
		// hub alone.
		h.awaitDelivery(ctx, func() (bool, <-chan struct{}) {
			h.chat.mu.Lock()
			defer h.chat.mu.Unlock()
			return h.chat.id >= id, h.chat.seen
		})
		return msg, nil
	}
	h.chat.mu.Lock()
	msg.ID = h.chat.id + 1
	direct := h.deliverChatLocked(msg)
	h.chat.mu.Unlock()
	h.writeUrgent(direct)
	return msg, nil
}

// Deliver hands a chat message that came through the relay to every session
// of the hub. The relay calls it in the order of the ids; an id the hub has
// delivered already is ignored, so a relay may deliver twice.
func (h *Hub) Deliver(msg protocol.Chat) {
	h.chat.mu.Lock()
	if msg.ID <= h.chat.id {
		h.chat.mu.Unlock()
		return
	}
	msg.History = false
	direct := h.deliverChatLocked(msg)
	h.chat.mu.Unlock()
	h.writeUrgent(direct)
}

// LastChatID is the id of the last chat message the hub delivered; a
// cluster node fills a moving session in up to it.
func (h *Hub) LastChatID() int64 {
	h.chat.mu.Lock()
	defer h.chat.mu.Unlock()
	return h.chat.id
}

// chatLog is the hub's chat: the messages it delivered, in the order of
// their ids.
type chatLog struct {
	mu      sync.Mutex    // serialises delivery: ids, history and fan-out order
	id      int64         // the last message delivered; guarded by mu
	history []*chatItem   // the last chatKept messages; guarded by mu
	seen    chan struct{} // guarded by mu; closed and replaced at each delivery
}

// A chatItem is one chat message, encoded once for every session.
type chatItem struct {
	id           int64
	live, replay *event // the second carries "history":true
}

func (c *chatLog) init() { c.seen = make(chan struct{}) }

// chatKept is how many chat messages a hub keeps: a new session is shown the
// last protocol.ChatHistory of them, and a session that moves in from
// another hub gets every one sent after the last it had. Its old hub may
// have lagged behind this one (a broker fault can stall a node's chat for
// seconds), so more are kept than a new session sees.
const chatKept = 1024

// deliverChatLocked appends msg to the history and to every session that
// has not got it (a session that came from another hub may have). It
// wakes the streams that must write themselves and returns those a
// fan-out may write (writeDirect), which the caller must, after it
// releases h.chat.mu. h.chat.mu must be held.
func (h *Hub) deliverChatLocked(msg protocol.Chat) *[]*Stream {
	now := time.Now()
	h.chat.id = msg.ID
	item := &chatItem{id: msg.ID, live: chatEvent(msg, now)}
	msg.History = true
	item.replay = chatEvent(msg, now)
	h.chat.history = append(h.chat.history, item)
	if len(h.chat.history) > chatKept {
		h.chat.history = h.chat.history[len(h.chat.history)-chatKept:]
	}
	h.mu.RLock()
	direct := directPool.Get().(*[]*Stream)
	for _, t := range h.sessions {
		if st := t.pushChat(item); st != nil {
			*direct = append(*direct, st)
		}
	}
	n := len(h.sessions)
	h.mu.RUnlock()
	close(h.chat.seen)
	h.chat.seen = make(chan struct{})
	h.stats.chats.Add(1)
	h.stats.chatDeliveries.Add(int64(n))
	return direct
}

// pushChat appends a chat message s has not had. It wakes s's stream, or
// returns it when a fan-out may write it (Stream.writeDirect): then the
// caller must, or wake it.
func (s *Session) pushChat(it *chatItem) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || it.id <= s.lastChat {
		return nil
	}
	s.lastChat = it.id
	s.appendLocked(it.live)
	if st := s.stream; st != nil {
		if st.direct.Load() {
			return st
		}
		st.wake()
	}
	return nil
}

func chatEvent(msg protocol.Chat, now time.Time) *event {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(msg) // strings are valid UTF-8: cannot fail
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	body, _ := protocol.AppendBody(nil, protocol.EventChat, data)
	// Urgent: a person is waiting for it, so it cuts a stream's
	// coalescing wait (WithFlushInterval) short.
	return &event{body: body, at: now.UnixNano(), urgent: true}
}

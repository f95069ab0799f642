package broadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// bucket is a token bucket: rate tokens a second, burst at most.
// Its session's mutex guards it.
type bucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) init(rate float64, burst int) {
	b.rate, b.burst, b.tokens = rate, float64(burst), float64(burst)
}

// take spends a token, or says how long until one is there.
func (b *bucket) take(now time.Time) (ok bool, wait time.Duration) {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

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
// waiting for a stream to come back, and keeps it in the history.
func (h *Hub) Chat(s *Session, name, text string) (protocol.Chat, error) {
	if err := CheckChat(name, text, h.opts.maxChatText); err != nil {
		return protocol.Chat{}, err
	}
	if name == "" {
		name = "anon"
	}
	now := time.Now()
	s.mu.Lock()
	gone := s.gone
	ok, wait := s.chat.take(now)
	s.mu.Unlock()
	if gone {
		return protocol.Chat{}, ErrUnknownSession
	}
	if !ok {
		h.stats.chatLimited.Add(1)
		return protocol.Chat{}, &RateError{What: "chat", RetryAfter: wait}
	}

	h.chatMu.Lock()
	defer h.chatMu.Unlock()
	h.chatID++
	msg := protocol.Chat{ID: h.chatID, Name: name, Text: text, At: now.UTC()}
	item := &chatItem{live: chatEvent(msg, now)}
	msg.History = true
	item.replay = chatEvent(msg, now)
	msg.History = false
	h.history = append(h.history, item)
	if len(h.history) > protocol.ChatHistory {
		h.history = h.history[len(h.history)-protocol.ChatHistory:]
	}
	h.mu.RLock()
	for _, t := range h.sessions {
		t.push(item.live)
	}
	n := len(h.sessions)
	h.mu.RUnlock()
	h.stats.chats.Add(1)
	h.stats.chatDeliveries.Add(int64(n))
	return msg, nil
}

func chatEvent(msg protocol.Chat, now time.Time) *event {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(msg) // strings are valid UTF-8: cannot fail
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	body, _ := protocol.AppendBody(nil, protocol.EventChat, data)
	return &event{body: body, at: now.UnixNano()}
}

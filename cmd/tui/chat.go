package main

import (
	"context"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxChatLines bounds the chat pane's memory; the server replays only 50.
const maxChatLines = 500

// chatLine is one entry of the chat pane: a message or a local notice (a
// failed send, a gap). Text and Name are already sanitised.
type chatLine struct {
	msg    protocol.Chat
	notice string
}

// chatKey identifies a message across a server restart, where ids start
// again from 1.
type chatKey struct {
	id int64
	at int64 // unix nanoseconds
}

// chat is the model of the chat pane: the conversation in a viewport and an
// input line that takes the keyboard while focused.
type chat struct {
	st    Styles
	keys  keyMap
	self  string         // our chat name, to tell our lines apart
	loc   *time.Location // where times are shown
	lines []chatLine
	seen  map[chatKey]bool // messages shown, so a replay never doubles a line

	vp    viewport.Model
	input textinput.Model

	width, height int
	dirty         bool // content must be rebuilt before the next View
}

func newChat(st Styles, keys keyMap, self string, loc *time.Location) chat {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "c or tab to chat"
	in.CharLimit = protocol.DefaultMaxChatText
	in.Cursor.SetMode(cursor.CursorStatic) // no blink: no idle redraws
	in.PlaceholderStyle = st.Placeholder
	vp := viewport.New(0, 0)
	vp.KeyMap = viewport.KeyMap{} // the root decides which keys scroll
	if loc == nil {
		loc = time.Local
	}
	return chat{st: st, keys: keys, self: self, loc: loc, vp: vp, input: in, seen: map[chatKey]bool{}}
}

// Focused reports whether the input line has the keyboard.
func (c *chat) Focused() bool { return c.input.Focused() }

// Focus gives the input line the keyboard.
func (c *chat) Focus() tea.Cmd {
	c.input.Placeholder = "type, enter to send, esc to leave"
	return c.input.Focus()
}

// Blur takes the keyboard away from the input line; what was typed stays.
func (c *chat) Blur() {
	c.input.Placeholder = "c or tab to chat"
	c.input.Blur()
}

// SetSize gives the pane its outer size, border included.
func (c *chat) SetSize(w, h int) {
	if w == c.width && h == c.height {
		return
	}
	c.width, c.height = w, h
	c.vp.Width = max(w-2, 1)
	c.vp.Height = max(h-3, 0) // border and input line
	c.input.Width = max(w-2-lipgloss.Width(c.input.Prompt)-1, 1)
	c.dirty = true
}

// Add shows chat messages, in the order given, skipping ones already shown.
func (c *chat) Add(msgs ...protocol.Chat) {
	for _, m := range msgs {
		k := chatKey{m.ID, m.At.UnixNano()}
		if c.seen[k] {
			continue
		}
		c.seen[k] = true
		m.Name, m.Text = sanitize(m.Name), sanitize(m.Text)
		c.lines = append(c.lines, chatLine{msg: m})
	}
	c.bound()
}

// Notice shows a local line, such as a chat the server refused.
func (c *chat) Notice(text string) {
	c.lines = append(c.lines, chatLine{notice: sanitize(text)})
	c.bound()
}

func (c *chat) bound() {
	if n := len(c.lines) - maxChatLines; n > 0 {
		for _, l := range c.lines[:n] {
			if l.notice == "" {
				delete(c.seen, chatKey{l.msg.ID, l.msg.At.UnixNano()})
			}
		}
		c.lines = append(c.lines[:0], c.lines[n:]...)
	}
	c.dirty = true
}

// Update handles keys while the input line is focused. Enter submits the
// line (as a chatSubmitMsg for the root to send); Esc and Tab leave.
func (c chat) Update(msg tea.Msg) (chat, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok && c.Focused() {
		switch {
		case key.Matches(k, c.keys.Send):
			text := strings.TrimSpace(c.input.Value())
			if text == "" {
				return c, nil
			}
			c.input.Reset()
			return c, func() tea.Msg { return chatSubmitMsg{text: text} }
		case key.Matches(k, c.keys.Leave):
			c.Blur()
			return c, nil
		}
	}
	var cmd tea.Cmd
	c.input, cmd = c.input.Update(msg)
	return c, cmd
}

// Scroll moves the conversation by n lines (negative is back in time).
func (c *chat) Scroll(n int) {
	c.refresh()
	if n < 0 {
		c.vp.ScrollUp(-n)
	} else {
		c.vp.ScrollDown(n)
	}
}

// ScrollPage moves the conversation by half a pane: back in time if back.
func (c *chat) ScrollPage(back bool) {
	n := max(c.vp.Height/2, 1)
	if back {
		n = -n
	}
	c.Scroll(n)
}

// refresh rebuilds the viewport's content if messages or size changed,
// following the newest line unless the reader scrolled back.
func (c *chat) refresh() {
	if !c.dirty {
		return
	}
	c.dirty = false
	follow := c.vp.AtBottom() || c.vp.TotalLineCount() == 0
	w := c.vp.Width
	var b strings.Builder
	for i, l := range c.lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(c.render(l, w))
	}
	c.vp.SetContent(b.String())
	if follow {
		c.vp.GotoBottom()
	}
}

// render draws one entry wrapped to w cells.
func (c *chat) render(l chatLine, w int) string {
	if l.notice != "" {
		return c.st.ChatError.Width(w).Render("! " + l.notice)
	}
	m := l.msg
	stamp := m.At.In(c.loc).Format("15:04")
	name := c.st.ChatName
	if m.Name == c.self {
		name = c.st.ChatSelf
	}
	text := m.Text
	if m.History {
		stamp = c.st.ChatHistory.Render(stamp)
		text = c.st.ChatHistory.Render(text)
	} else {
		stamp = c.st.ChatTime.Render(stamp)
	}
	return lipgloss.NewStyle().Width(w).Render(stamp + " " + name.Render(m.Name) + ": " + text)
}

// View draws the pane at exactly its outer size.
func (c *chat) View() string {
	if c.width < 3 || c.height < 3 {
		return ""
	}
	c.refresh()
	body := c.vp.View()
	if c.vp.Height == 0 {
		body = ""
	}
	input := lipgloss.NewStyle().Width(c.vp.Width).MaxWidth(c.vp.Width).Render(c.input.View())
	style := c.st.Chat
	if c.Focused() {
		style = c.st.ChatFocus
	}
	if body == "" {
		return style.Width(c.vp.Width).Render(input)
	}
	return style.Width(c.vp.Width).Render(body + "\n" + input)
}

// sendChat is a Cmd that posts one chat line.
func (m *model) sendChat(text string) tea.Cmd {
	if m.sess == nil {
		m.chat.Notice("not connected; not sent")
		return nil
	}
	sess, ctx, name := m.sess, m.ctx, m.cfg.name
	return func() tea.Msg {
		cctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		_, err := sess.Chat(cctx, name, text)
		return chatSentMsg{err: err}
	}
}

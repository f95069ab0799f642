package main

import (
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
)

// keyMap is every key the client answers to when no input line has focus,
// plus the keys of the input lines, so help can show them all.
type keyMap struct {
	Tune     key.Binding // 1-9: tune one channel in or out
	All      key.Binding
	None     key.Binding
	Chat     key.Binding
	Bulk     key.Binding
	ScrollUp key.Binding
	ScrollDn key.Binding
	Help     key.Binding
	Quit     key.Binding

	// Input lines (chat and bulk prompt).
	Send   key.Binding
	Leave  key.Binding // leaves the chat input (tab toggles it)
	Cancel key.Binding // closes the bulk prompt (tab completes there)
	Force  key.Binding // ctrl+c quits from anywhere
}

func defaultKeys() keyMap {
	return keyMap{
		Tune:     key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6", "7", "8", "9"), key.WithHelp("1-3", "tune channel")),
		All:      key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "all on")),
		None:     key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "all off")),
		Chat:     key.NewBinding(key.WithKeys("c", "tab"), key.WithHelp("c/tab", "chat")),
		Bulk:     key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "bulk download")),
		ScrollUp: key.NewBinding(key.WithKeys("pgup", "up", "k"), key.WithHelp("↑/k/pgup", "chat back")),
		ScrollDn: key.NewBinding(key.WithKeys("pgdown", "down", "j"), key.WithHelp("↓/j/pgdn", "chat forward")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),

		Send:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "send")),
		Leave:  key.NewBinding(key.WithKeys("esc", "tab"), key.WithHelp("esc", "leave input")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
		Force:  key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
	}
}

// withChannels adjusts the tune key's help to the number of channels.
func (k keyMap) withChannels(n int) keyMap {
	n = min(max(n, 1), 9)
	keys := make([]string, n)
	for i := range n {
		keys[i] = string(rune('1' + i))
	}
	h := keys[0]
	if n > 1 {
		h = keys[0] + "-" + keys[n-1]
	}
	k.Tune = key.NewBinding(key.WithKeys(keys...), key.WithHelp(h, "tune channel"))
	return k
}

// navKeys is the help.KeyMap shown while no input line has focus.
type navKeys struct{ keyMap }

// ShortHelp implements help.KeyMap.
func (k navKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Tune, k.Chat, k.Bulk, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap.
func (k navKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Tune, k.All, k.None},
		{k.Chat, k.Bulk, k.ScrollUp, k.ScrollDn},
		{k.Help, k.Quit},
	}
}

// inputKeys is the help.KeyMap shown while an input line has focus.
type inputKeys struct {
	keyMap
	send string // what enter does here
	bulk bool   // the bulk prompt (esc cancels, tab completes)
}

// ShortHelp implements help.KeyMap.
func (k inputKeys) ShortHelp() []key.Binding {
	send := k.Send
	send.SetHelp("enter", k.send)
	if k.bulk {
		complete := key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "complete file name"))
		return []key.Binding{send, k.Cancel, complete, k.Force}
	}
	return []key.Binding{send, k.Leave, k.Force}
}

// FullHelp implements help.KeyMap.
func (k inputKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{k.ShortHelp()}
}

var (
	_ help.KeyMap = navKeys{}
	_ help.KeyMap = inputKeys{}
)

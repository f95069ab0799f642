package main

import (
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/lipgloss"
)

// Styles holds every lipgloss style the client draws with, so that colours
// and borders are decided in one place. Colours are adaptive and go through
// lipgloss's renderer, which degrades them to the terminal's profile and drops
// them entirely under NO_COLOR.
type Styles struct {
	// Pane is the border of a channel pane that is tuned out; PaneOn that of
	// one tuned in, drawn in the channel's colour.
	Pane    lipgloss.Style
	PaneOn  lipgloss.Style
	Title   lipgloss.Style
	On      lipgloss.Style
	Off     lipgloss.Style
	Pending lipgloss.Style
	// Channel colours, by pane index (wrapping).
	Channels []lipgloss.AdaptiveColor

	Chat        lipgloss.Style
	ChatFocus   lipgloss.Style
	ChatTime    lipgloss.Style
	ChatName    lipgloss.Style
	ChatSelf    lipgloss.Style
	ChatHistory lipgloss.Style
	ChatError   lipgloss.Style

	Bulk      lipgloss.Style
	BulkOK    lipgloss.Style
	BulkError lipgloss.Style
	BarColor  string // the filled part of the progress bar

	StatusGood  lipgloss.Style
	StatusWarn  lipgloss.Style
	StatusBad   lipgloss.Style
	StatusFaint lipgloss.Style

	// Placeholder is the hint an empty input line shows, and the file name
	// the bulk prompt offers to complete.
	Placeholder lipgloss.Style
	// Help is the key help's description; HelpKey its keys.
	Help    lipgloss.Style
	HelpKey lipgloss.Style
}

// DefaultStyles returns the client's look.
func DefaultStyles() Styles {
	subtle := lipgloss.AdaptiveColor{Light: "250", Dark: "238"}
	faint := lipgloss.AdaptiveColor{Light: "245", Dark: "243"}
	green := lipgloss.AdaptiveColor{Light: "28", Dark: "42"}
	amber := lipgloss.AdaptiveColor{Light: "130", Dark: "214"}
	red := lipgloss.AdaptiveColor{Light: "160", Dark: "203"}
	accent := lipgloss.AdaptiveColor{Light: "63", Dark: "111"}

	border := lipgloss.RoundedBorder()
	return Styles{
		Pane:    lipgloss.NewStyle().Border(border).BorderForeground(subtle),
		PaneOn:  lipgloss.NewStyle().Border(border),
		Title:   lipgloss.NewStyle().Bold(true),
		On:      lipgloss.NewStyle().Foreground(green).Bold(true),
		Off:     lipgloss.NewStyle().Foreground(faint),
		Pending: lipgloss.NewStyle().Foreground(amber),
		Channels: []lipgloss.AdaptiveColor{
			{Light: "31", Dark: "86"},   // teal
			{Light: "127", Dark: "213"}, // magenta
			{Light: "136", Dark: "220"}, // gold
			{Light: "27", Dark: "75"},   // blue
		},

		Chat:        lipgloss.NewStyle().Border(border).BorderForeground(subtle),
		ChatFocus:   lipgloss.NewStyle().Border(border).BorderForeground(accent),
		ChatTime:    lipgloss.NewStyle().Foreground(faint),
		ChatName:    lipgloss.NewStyle().Foreground(accent).Bold(true),
		ChatSelf:    lipgloss.NewStyle().Foreground(green).Bold(true),
		ChatHistory: lipgloss.NewStyle().Foreground(faint),
		ChatError:   lipgloss.NewStyle().Foreground(red),

		Bulk:      lipgloss.NewStyle(),
		BulkOK:    lipgloss.NewStyle().Foreground(green).Bold(true),
		BulkError: lipgloss.NewStyle().Foreground(red).Bold(true),
		BarColor:  "#7571F9",

		StatusGood:  lipgloss.NewStyle().Foreground(green).Bold(true),
		StatusWarn:  lipgloss.NewStyle().Foreground(amber).Bold(true),
		StatusBad:   lipgloss.NewStyle().Foreground(red).Bold(true),
		StatusFaint: lipgloss.NewStyle().Foreground(faint),

		Placeholder: lipgloss.NewStyle().Foreground(faint),
		Help:        lipgloss.NewStyle().Foreground(faint),
		HelpKey:     lipgloss.NewStyle().Foreground(faint).Bold(true),
	}
}

// help returns the styles of the key help (bubbles/help).
func (s Styles) help() help.Styles {
	h := help.New().Styles
	h.ShortKey, h.FullKey = s.HelpKey, s.HelpKey
	h.ShortDesc, h.FullDesc = s.Help, s.Help
	return h
}

// channelColor is the colour of the i-th channel.
func (s Styles) channelColor(i int) lipgloss.AdaptiveColor {
	return s.Channels[i%len(s.Channels)]
}

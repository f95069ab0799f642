package protocol_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestChunks(t *testing.T) {
	const size = protocol.BulkChunkSize
	for _, tt := range []struct {
		n    int64
		want int
	}{
		{-1, 0},
		{0, 0},
		{1, 1},
		{size - 1, 1},
		{size, 1},
		{size + 1, 2},
		{2 * size, 2},
		{2*size + 1, 3},
		{1 << 30, 21846}, // 1 GiB: 21845.33 chunks of 48 KiB
	} {
		if got := protocol.Chunks(tt.n); got != tt.want {
			t.Errorf("Chunks(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
	// Every byte is in exactly one chunk, and no chunk is empty.
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		n := r.Int64N(1 << 40)
		k := int64(protocol.Chunks(n))
		if n > 0 && !((k-1)*size < n && n <= k*size) {
			t.Fatalf("Chunks(%d) = %d: not ceil(n/%d)", n, k, size)
		}
	}
}

// TestLimits pins the numbers PROTOCOL.md states, so that a change to either
// is noticed here.
func TestLimits(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"DefaultMaxBody", protocol.DefaultMaxBody, 16 << 10},
		{"DefaultMaxChatText", protocol.DefaultMaxChatText, 500},
		{"DefaultChatRate", protocol.DefaultChatRate, 2.0},
		{"DefaultChatBurst", protocol.DefaultChatBurst, 10},
		{"ChatHistory", protocol.ChatHistory, 50},
		{"BulkChunkSize", protocol.BulkChunkSize, 48 << 10},
		{"ReplayMinEvents", protocol.ReplayMinEvents, 1024},
		{"ReplayMinAge", protocol.ReplayMinAge, 30 * time.Second},
		{"RetryMillis", protocol.RetryMillis, 2000},
		{"PingInterval", protocol.PingInterval, 15 * time.Second},
		{"DefaultSessionTTL", protocol.DefaultSessionTTL, 60 * time.Second},
		{"SessionIDBytes (128 bits or more)", protocol.SessionIDBytes >= 16, true},
		{"MaxPublishData", protocol.MaxPublishData, 64 << 10},
		{"MaxPublishBody (385 KiB)", protocol.MaxPublishBody, 385 << 10},
		{"DefaultPublishRate", protocol.DefaultPublishRate, 1000.0},
		{"channel kinds", []string{protocol.KindTicker, protocol.KindPublished}, []string{"ticker", "published"}},
		{"events", []string{protocol.EventSession, protocol.EventTuned, protocol.EventChat, protocol.EventBulk,
			protocol.EventBulkEnd, protocol.EventGap, protocol.EventBye},
			[]string{"session", "tuned", "chat", "bulk", "bulk-end", "gap", "bye"}},
		{"bye reasons", []string{protocol.ByeShutdown, protocol.ByeReplaced}, []string{"shutdown", "replaced"}},
		{"channels", []string{protocol.ChannelOne, protocol.ChannelTwo, protocol.ChannelThree}, []string{"one", "two", "three"}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

var at = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// jsonShapes pairs a value with the exact JSON PROTOCOL.md shows for it.
var jsonShapes = []struct {
	name string
	v    any
	want string
}{
	{"Channel", protocol.Channel{Name: "one", Title: "Latin", Kind: protocol.KindTicker, Rate: 2.5, Repertoire: "abc", Width: 1},
		`{"name":"one","title":"Latin","kind":"ticker","rate":2.5,"repertoire":"abc","width":1}`},
	{"Channel published", protocol.Channel{Name: "log", Title: "Log", Kind: protocol.KindPublished},
		`{"name":"log","title":"Log","kind":"published","rate":0,"repertoire":"","width":0}`},
	{"PublishPost", protocol.PublishPost{Data: "a\nb"}, `{"data":"a\nb"}`},
	{"PublishAnswer", protocol.PublishAnswer{Events: 3}, `{"events":3}`},
	{"PublishError", protocol.PublishError{Error: "too large", Events: 2}, `{"error":"too large","events":2}`},
	{"File", protocol.File{Name: "a.bin", Bytes: 1 << 20}, `{"name":"a.bin","bytes":1048576}`},
	{"CreateSession", protocol.CreateSession{Channels: []string{"one"}}, `{"channels":["one"]}`},
	{"CreateSession empty", protocol.CreateSession{}, `{}`},
	{"SessionCreated", protocol.SessionCreated{Session: "S", Channels: []string{"one"}, Events: "/events?session=S"},
		`{"session":"S","channels":["one"],"events":"/events?session=S"}`},
	{"SessionCreated nil channels", protocol.SessionCreated{Session: "S", Events: "/events?session=S"},
		`{"session":"S","channels":[],"events":"/events?session=S"}`},
	{"*SessionCreated", &protocol.SessionCreated{Session: "S", Events: "/events?session=S"},
		`{"session":"S","channels":[],"events":"/events?session=S"}`},
	{"Tune on", protocol.Tune{Channel: "two", On: ptr(true)}, `{"channel":"two","on":true}`},
	{"Tune off", protocol.Tune{Channel: "two", On: ptr(false)}, `{"channel":"two","on":false}`},
	{"Tune set", protocol.Tune{Channels: []string{"one", "three"}}, `{"channels":["one","three"]}`},
	{"Tune empty set", protocol.Tune{Channels: []string{}}, `{"channels":[]}`},
	{"Tuned", protocol.Tuned{Channels: []string{"one"}}, `{"channels":["one"]}`},
	{"Tuned nil", protocol.Tuned{}, `{"channels":[]}`},
	{"*Tuned nil", &protocol.Tuned{}, `{"channels":[]}`},
	{"ChatPost", protocol.ChatPost{Name: "ann", Text: "hi"}, `{"name":"ann","text":"hi"}`},
	{"ChatAccepted", protocol.ChatAccepted{ID: 7}, `{"id":7}`},
	{"Chat", protocol.Chat{ID: 1, Name: "ann", Text: "<b>hi</b>", At: at},
		`{"id":1,"name":"ann","text":"\u003cb\u003ehi\u003c/b\u003e","at":"2025-01-02T03:04:05Z"}`},
	{"Chat history", protocol.Chat{ID: 1, Name: "ann", Text: "hi", At: at, History: true},
		`{"id":1,"name":"ann","text":"hi","at":"2025-01-02T03:04:05Z","history":true}`},
	{"BulkPost bytes", protocol.BulkPost{Bytes: ptr[int64](1000)}, `{"bytes":1000}`},
	{"BulkPost zero bytes", protocol.BulkPost{Bytes: ptr[int64](0)}, `{"bytes":0}`},
	{"BulkPost file", protocol.BulkPost{File: "a.bin"}, `{"file":"a.bin"}`},
	{"BulkAccepted", protocol.BulkAccepted{Transfer: "T", Bytes: 100, Chunks: 1, SHA256: "H"},
		`{"transfer":"T","bytes":100,"chunks":1,"sha256":"H"}`},
	// 0xfb 0xff 0xbf uses both characters where standard and URL base64
	// differ; two bytes need one "=" of padding.
	{"BulkChunk", protocol.BulkChunk{Transfer: "T", Seq: 0, Chunks: 2, Data: []byte{0xfb, 0xff, 0xbf, 0xfb, 0xff}},
		`{"transfer":"T","seq":0,"chunks":2,"data":"+/+/+/8="}`},
	{"BulkChunk one byte", protocol.BulkChunk{Transfer: "T", Seq: 1, Chunks: 2, Data: []byte{0}},
		`{"transfer":"T","seq":1,"chunks":2,"data":"AA=="}`},
	{"BulkEnd", protocol.BulkEnd{Transfer: "T", Bytes: 0, SHA256: "e3b0c442"},
		`{"transfer":"T","bytes":0,"sha256":"e3b0c442"}`},
	{"SessionEvent", protocol.SessionEvent{Session: "S", Channels: []string{"one", "two"}, Resumed: true},
		`{"session":"S","channels":["one","two"],"resumed":true}`},
	{"SessionEvent nil channels", protocol.SessionEvent{Session: "S"}, `{"session":"S","channels":[],"resumed":false}`},
	{"*SessionEvent nil channels", &protocol.SessionEvent{Session: "S"}, `{"session":"S","channels":[],"resumed":false}`},
	{"Gap", protocol.Gap{Missed: 18446744073709551615}, `{"missed":18446744073709551615}`},
	{"Bye", protocol.Bye{Reason: protocol.ByeReplaced}, `{"reason":"replaced"}`},
	{"Error", protocol.Error{Error: "unknown session"}, `{"error":"unknown session"}`},
	{"[]Channel", []protocol.Channel{{Name: "two", Title: "CJK", Kind: protocol.KindTicker, Rate: 1, Repertoire: "漢", Width: 2}},
		`[{"name":"two","title":"CJK","kind":"ticker","rate":1,"repertoire":"漢","width":2}]`},
}

// TestJSONShapes checks that every wire type marshals to exactly the field
// names, order and value forms PROTOCOL.md shows, and unmarshals back to an
// equal value (nil lists come back as empty ones: they are sent as []).
func TestJSONShapes(t *testing.T) {
	for _, tt := range jsonShapes {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("json.Marshal\n got %s\nwant %s", got, tt.want)
			}
			back := reflect.New(reflect.TypeOf(tt.v))
			if err := json.Unmarshal(got, back.Interface()); err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(back.Elem().Interface())
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != tt.want {
				t.Errorf("after a round trip\n got %s\nwant %s", again, tt.want)
			}
		})
	}
}

// TestTuneDecoding checks that the server can tell the two forms of a tune
// request apart: absent (or null) "channels" is nil, [] is empty and non-nil.
func TestTuneDecoding(t *testing.T) {
	for _, tt := range []struct {
		in          string
		channel     string
		on          *bool
		channels    []string
		channelsNil bool
	}{
		{in: `{"channel":"two","on":true}`, channel: "two", on: ptr(true), channelsNil: true},
		{in: `{"channel":"two","on":false}`, channel: "two", on: ptr(false), channelsNil: true},
		{in: `{"channel":"two"}`, channel: "two", channelsNil: true},
		{in: `{"channels":[]}`, channels: []string{}},
		{in: `{"channels":null}`, channelsNil: true},
		{in: `{"channels":["one","three"]}`, channels: []string{"one", "three"}},
	} {
		var got protocol.Tune
		if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got.Channel != tt.channel || !reflect.DeepEqual(got.On, tt.on) {
			t.Errorf("%s: channel %q on %v", tt.in, got.Channel, got.On)
		}
		if (got.Channels == nil) != tt.channelsNil {
			t.Errorf("%s: Channels nil = %v, want %v", tt.in, got.Channels == nil, tt.channelsNil)
		}
		if !tt.channelsNil && !reflect.DeepEqual(got.Channels, tt.channels) {
			t.Errorf("%s: Channels = %q, want %q", tt.in, got.Channels, tt.channels)
		}
	}
}

func TestBulkPostDecoding(t *testing.T) {
	var p protocol.BulkPost
	if err := json.Unmarshal([]byte(`{"bytes":0}`), &p); err != nil || p.Bytes == nil || *p.Bytes != 0 || p.File != "" {
		t.Errorf(`{"bytes":0}: %+v, %v; want Bytes = 0, present`, p, err)
	}
	p = protocol.BulkPost{}
	if err := json.Unmarshal([]byte(`{"file":"a.bin"}`), &p); err != nil || p.Bytes != nil || p.File != "a.bin" {
		t.Errorf(`{"file":"a.bin"}: %+v, %v; want Bytes absent`, p, err)
	}
}

// TestBulkChunkBase64 checks that Data is standard base64: URL-safe or
// unpadded text is refused, so clients must not send or expect it.
func TestBulkChunkBase64(t *testing.T) {
	var c protocol.BulkChunk
	if err := json.Unmarshal([]byte(`{"data":"+/8="}`), &c); err != nil || !reflect.DeepEqual(c.Data, []byte{0xfb, 0xff}) {
		t.Errorf("standard base64: %v, %v", c.Data, err)
	}
	for _, bad := range []string{`{"data":"-_8="}`, `{"data":"+/8"}`} {
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s decoded, want an error", bad)
		}
	}
}

func TestChatDecoding(t *testing.T) {
	var c protocol.Chat
	in := `{"id":3,"name":"ann","text":"hi","at":"2025-01-02T04:04:05.5+01:00"}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.ID != 3 || c.History || !c.At.Equal(at.Add(500*time.Millisecond)) {
		t.Errorf("%s decoded to %+v", in, c)
	}
}

// bulkJSON is the data of a bulk event carrying raw, as the server sends it.
func bulkJSON(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	b, err := json.Marshal(protocol.BulkChunk{Transfer: "t-0123456789abcdef", Seq: 0, Chunks: 1, Data: raw})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

package server

import "testing"

func TestLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"text":"plain"}`, false},
		{`{"text":"\ud83d\ude00"}`, false}, // a pair: 😀
		{`{"text":"\u00e9\n\\u d800"}`, false},
		{`{"text":"\\ud800"}`, false}, // an escaped backslash, then text
		{`{"text":"a\ud800b"}`, true},
		{`{"text":"\udc00"}`, true},
		{`{"text":"\ud800\u0041"}`, true},
		{`{"text":"\ud800`, true},
		{`{"text":"\uD800\uDC00"}`, false},
	} {
		if got := loneSurrogate([]byte(tc.body)); got != tc.want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

package server

import (
	"strings"
	"testing"
)

// TestRedactPath: the path logged for a failed request to a session's
// endpoint holds no more than the session id's first 6 characters. (Only
// the routes' own paths reach the log: fail logs 500s alone, and a path the
// routes do not match is a 404 or 405.)
func TestRedactPath(t *testing.T) {
	const id = "Zm9vYmFyYmF6cXV4cXV1eA"
	for _, p := range []string{
		"/sessions/" + id,
		"/sessions/" + id + "/channels",
		"/sessions/" + id + "/chat",
		"/sessions/" + id + "/bulk",
		"/sessions/" + id + id + "/bulk",
	} {
		got := redactPath(p)
		if !strings.HasPrefix(got, "/sessions/"+id[:6]) {
			t.Errorf("redactPath(%q) = %q: the session is not named at all", p, got)
		}
		for k := 0; k+7 <= len(id); k++ {
			if strings.Contains(got, id[k:k+7]) {
				t.Errorf("redactPath(%q) = %q: holds 7 characters of the id", p, got)
				break
			}
		}
	}
}

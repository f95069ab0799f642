package cluster

import (
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
)

// Names on the broker: every subject, stream and bucket starts with the
// cluster's prefix, so clusters can share a broker, and a session is named
// by its key, never its id.

// key is a session's name on the broker: a hash, since the id itself is
// the capability to read and steer the session and the broker's subjects
// and keys are visible to every node and operator.
func key(id string) string {
	sum := sha256.Sum256([]byte("xhrsse session\x00" + id))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// sessionSubject is where the node holding the session of key k answers
// for it.
func (n *Node) sessionSubject(k string) string { return n.cfg.Prefix + ".session." + k }

// nodeSubject is where node answers where a session is (whereIs).
func (n *Node) nodeSubject(node string) string { return n.cfg.Prefix + ".node." + node }

func (n *Node) chatSubject() string         { return n.cfg.Prefix + ".chat" }
func (n *Node) chatStreamName() string      { return n.cfg.Prefix + "_CHAT" }
func (n *Node) publishedSubject() string    { return n.cfg.Prefix + ".published" }
func (n *Node) publishedStreamName() string { return n.cfg.Prefix + "_PUBLISHED" }
func (n *Node) sessionsBucket() string      { return n.cfg.Prefix + "_sessions" }
func (n *Node) configBucket() string        { return n.cfg.Prefix + "_config" }

// validName accepts what is safe as one token of a subject and in a bucket
// name.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// redacted is urls (comma-separated) with any password replaced, for errors
// and logs.
func redacted(urls string) string {
	list := strings.Split(urls, ",")
	for i, u := range list {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			list[i] = p.Redacted()
		}
	}
	return strings.Join(list, ",")
}

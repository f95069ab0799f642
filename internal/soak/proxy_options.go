package soak

import "time"

// A ProxyOption changes a Proxy.
type ProxyOption func(*Proxy)

// WithHold sets how long a stalled connection stays open before both sides
// are reset (default 3 s).
func WithHold(d time.Duration) ProxyOption { return func(p *Proxy) { p.hold = d } }

// WithRetry makes the proxy rewrite the "retry:" field of every stream to ms
// milliseconds, written with as many digits as the server's value (leading
// zeros are digits to the spec), so the frame keeps its length and an HTTP
// chunk its size. A client that honours retry then comes back after ms,
// not after the server's 2 s, and a soak of seconds sees dozens of cuts. A
// value that does not fit in the digits is left alone.
func WithRetry(ms int) ProxyOption { return func(p *Proxy) { p.retry = ms } }

// WithDownRate limits each connection's server-to-client bytes to
// bytesPerSec a second (averaged from the connection's start; <= 0: no
// limit), as a slow link does, so a test can catch a large transfer midway
// and cut it.
func WithDownRate(bytesPerSec int) ProxyOption { return func(p *Proxy) { p.rate = bytesPerSec } }

// WithUpstreamBuffer sets the receive buffer of each connection's server
// side to n bytes (SO_RCVBUF before the connect; <= 0: the kernel's
// autotuned default, megabytes on loopback). With WithDownRate it makes the
// proxy a bottleneck link that holds little: the server's socket sees the
// window close after about n bytes, as it would behind a slow hop, instead
// of handing megabytes to a proxy that then trickles them out.
func WithUpstreamBuffer(n int) ProxyOption { return func(p *Proxy) { p.upBuf = n } }

// WithIdleCut resets both sides of a connection that carried no byte either
// way for d (<= 0: never), without a word to either, as a NAT or load
// balancer idle timeout does. Checked every 10 ms; Timeouts counts the cuts.
func WithIdleCut(d time.Duration) ProxyOption { return func(p *Proxy) { p.idle = d } }

// WithLifetime resets both sides of every connection d after it opened
// (<= 0: never), however busy, as a proxy that recycles connections does.
// Checked every 10 ms; Timeouts counts the cuts.
func WithLifetime(d time.Duration) ProxyOption { return func(p *Proxy) { p.life = d } }

// WithGhost makes a request arrive twice, the first copy last. The first
// stream request (GET /events) that comes on a connection which carried
// data before (a kept-alive connection the HTTP client reused) is held
// back, and the client's side of that connection closed at once, so Go's
// http.Transport sends the request again on a new connection. The held
// copy goes to the server delay later, on the old server connection, and
// its answer is thrown away; that server connection stays open until the
// proxy closes. Only the first such request is held. Ghosted tells when
// the copy went out.
func WithGhost(delay time.Duration) ProxyOption { return func(p *Proxy) { p.ghost = delay } }

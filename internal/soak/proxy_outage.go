package soak

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Down stops listening and closes every connection (both sides, with a
// FIN): an outage, as a client sees a server or network that went away, new
// connections refused. Up ends it. It returns how many connections it
// closed, counted as CutClose; when already down it does nothing.
func (p *Proxy) Down() int {
	p.outage.Lock()
	defer p.outage.Unlock()
	ln, links := p.unlisten(false)
	if ln == nil {
		return 0
	}
	ln.Close()
	for _, l := range links {
		p.cut(l, CutClose)
	}
	return len(links)
}

// Up listens again on the proxy's address after Down, trying for up to
// 2.5 s while the port is not free yet. When already up it does nothing.
func (p *Proxy) Up() error {
	p.outage.Lock()
	defer p.outage.Unlock()
	p.mu.Lock()
	up, closed := p.ln != nil, p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return errors.New("soak: proxy: up after close")
	case up:
		return nil
	}
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("soak: proxy: listen again: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ln.Close()
		return errors.New("soak: proxy: up after close")
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

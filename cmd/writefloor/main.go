// Command writefloor measures the least a server can spend to send one small
// event to each of N loopback TCP streams: one write(2) per socket, in a
// tight loop, with nothing else in the process. It is the floor under a
// chat's fan-out for any SSE server that keeps one connection per client,
// xhrsse and the baselines alike (docs/PERFORMANCE.md, "The kernel's
// floor").
//
// Run the writer and the reader as two processes, each pinned to its own
// core, as the capacity benchmark pins the server and the load generator:
//
//	taskset -c 0 writefloor -role write -n 10000 &
//	taskset -c 1 writefloor -role read -n 10000
//
// The writer prints each wave's time and CPU per write; the reader, the
// delay from a wave's start to each stream's receipt of it (p50, p99, max).
// Loopback only; the number of waves bounds the run.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

func main() {
	role := flag.String("role", "write", "write (listens, then writes the waves) or read (dials, then reads them)")
	addr := flag.String("addr", "127.0.0.1:9911", "loopback address the writer listens on")
	n := flag.Int("n", 5000, "streams")
	waves := flag.Int("waves", 10, "events sent to every stream")
	every := flag.Duration("every", 700*time.Millisecond, "time between waves")
	size := flag.Int("size", 160, "bytes per event (at least 8: it carries the wave's start time)")
	flag.Parse()
	if *size < 8 {
		log.Fatal("-size must be at least 8")
	}
	var err error
	switch *role {
	case "write":
		err = write(*addr, *n, *waves, *every, *size)
	case "read":
		err = read(*addr, *n, *waves, *size)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// write accepts n streams, then sends waves events to each: one write per
// socket per wave, on the sockets' own (non-blocking) descriptors.
func write(addr string, n, waves int, every time.Duration, size int) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	conns := make([]net.Conn, 0, n) // they own the descriptors in fds
	fds := make([]int, 0, n)
	for len(conns) < n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		if err := rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) }); err != nil {
			return err
		}
		conns = append(conns, c)
	}
	buf := make([]byte, size)
	for w := range waves {
		time.Sleep(every)
		var before, after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		start := time.Now()
		binary.LittleEndian.PutUint64(buf, uint64(start.UnixNano()))
		for _, fd := range fds {
			if _, err := syscall.Write(fd, buf); err != nil {
				return fmt.Errorf("wave %d: %w", w, err)
			}
		}
		took := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
		fmt.Printf("wave %d: %v for %d writes: %.2f µs a write, CPU %.2f µs a write, %.0f%% of it the kernel's\n",
			w, took.Round(time.Microsecond), n, float64(took.Nanoseconds())/float64(n)/1e3,
			float64(cpu)/float64(n)/1e3, 100*float64(after.Stime.Nano()-before.Stime.Nano())/float64(max(cpu, 1)))
	}
	return nil
}

// read dials n streams, reads waves events from each, and prints how long
// after its wave's start each arrived.
func read(addr string, n, waves, size int) error {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	var (
		mu     sync.Mutex
		delays []time.Duration // guarded by mu
		errs   []error         // guarded by mu
		wg     sync.WaitGroup
	)
	for _, c := range conns {
		wg.Go(func() {
			buf := make([]byte, size)
			mine := make([]time.Duration, 0, waves)
			var err error
			for range waves {
				if _, err = io.ReadFull(c, buf); err != nil {
					break
				}
				mine = append(mine, time.Since(time.Unix(0, int64(binary.LittleEndian.Uint64(buf)))))
			}
			mu.Lock()
			delays = append(delays, mine...)
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(delays) == 0 {
		return errors.Join(append(errs, errors.New("nothing read"))...)
	}
	slices.Sort(delays)
	at := func(q float64) time.Duration {
		return delays[int(q*float64(len(delays)-1))].Round(100 * time.Microsecond)
	}
	fmt.Printf("%d streams, %d events read (%d streams failed): delay p50 %v, p99 %v, max %v\n",
		n, len(delays), len(errs), at(0.5), at(0.99), at(1))
	return nil
}

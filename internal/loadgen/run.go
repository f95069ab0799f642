package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Run performs one load run and reports it. It opens cfg.Streams streams
// (ramp), measures for cfg.Duration while chatting and transferring (window),
// waits up to cfg.Drain for chats in flight, then closes everything. It
// returns an error only when the run could not start (bad configuration,
// server unreachable); failures during the run are counted in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	targets, err := parseTargets(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.PostAnywhere && len(targets) < 2 {
		return nil, errors.New("loadgen: posting to another node than the stream's needs at least two URLs")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.hardCap())
	defer cancel()
	log := cfg.Logger

	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxConnsPerHost:     cfg.Concurrency + 16,
		MaxIdleConns:        cfg.Concurrency + 16,
		MaxIdleConnsPerHost: cfg.Concurrency + 16,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	// Every node must answer before the run starts; they serve the same
	// channels, so the first one's list stands for all.
	var chans []protocol.Channel
	for i, t := range targets {
		cs, err := fetchChannels(ctx, hc, t.base)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			chans = cs
		}
	}
	tuned, rateSum, err := pickChannels(chans, cfg.Channels)
	if err != nil {
		return nil, err
	}

	rep := &Report{
		Label: cfg.Label, Target: strings.Join(bases(targets), ","), Wanted: cfg.Streams, Channels: tuned,
		TickRate: rateSum, ChatRate: cfg.ChatRate, StartedAt: time.Now().UTC(), PostAnywhere: cfg.PostAnywhere,
	}
	rep.FileLimit, _ = RaiseFileLimit()
	rep.LoadAvg[0] = LoadAvg()
	var procs *procSet
	if pids := cfg.serverPIDs(); len(pids) > 0 {
		if procs, err = newProcSet(pids); err != nil {
			return nil, err
		}
	}

	clock := time.Now()
	var chat *chatLog
	if cfg.ChatRate > 0 {
		capacity := int(math.Ceil(cfg.ChatRate*cfg.Duration.Seconds())) + 16
		chat = newChatLog(randomID(), clock, capacity)
	}
	op := &opener{
		targets: targets, postAnywhere: cfg.PostAnywhere, hc: hc, chat: chat, clock: clock,
		dialer: dialers(targets, cfg.LocalAddrs),
	}

	// Ramp: open the streams, cfg.Concurrency at a time, each handed to a
	// poller as soon as it is open.
	streamsCtx, stopStreams := context.WithCancel(ctx)
	var polling sync.WaitGroup // the pollers' goroutines
	polls, err := startPollers(streamsCtx, &polling)
	if err != nil {
		stopStreams()
		return nil, err
	}
	defer func() {
		stopStreams()
		polling.Wait()
		polls.close()
	}()
	streams, connErrs, lastConnErr := ramp(ctx, streamsCtx, &cfg, op, tuned, polls)
	rep.Opened = len(streams)
	rep.ConnectErrors = connErrs
	rep.LastConnectError = lastConnErr
	rep.Ramp = time.Since(clock).Seconds()
	log.Info("ramp done", "label", cfg.Label, "opened", len(streams), "errors", connErrs, "took", time.Since(clock).Round(time.Millisecond))

	var bulkStream *stream
	if cfg.BulkBytes > 0 && cfg.BulkVia == BulkSSE {
		bulkStream, err = op.open(ctx, cfg.Streams, []string{})
		if err == nil {
			bulkStream.bulk = newBulkReceiver()
			bulkStream.chat = nil
			err = polls.hold(streamsCtx, bulkStream)
		}
		if err != nil {
			if bulkStream != nil {
				bulkStream.close()
			}
			rep.Bulk = &BulkReport{Via: BulkSSE, Size: cfg.BulkBytes, Errors: 1, LastError: err.Error()}
			bulkStream = nil
		}
	}

	// Window: measure while chatting and transferring.
	startEv, startBytes, startTicks, alive := sums(streams)
	for _, st := range streams {
		st.windowTicks[0] = st.ticks.Load()
	}
	if procs != nil {
		procs.windowStart()
	}
	selfStart, _ := ReadProc(0)
	machStart, machErr := ReadMachine()
	t0 := time.Now()
	windowCtx, endWindow := context.WithTimeout(ctx, cfg.Duration)
	defer endWindow()
	var (
		side     sync.WaitGroup
		chatRes  chatResult
		bulkRes  BulkReport
		chatters []chatter
	)
	if chat != nil && len(streams) > 0 {
		for _, st := range streams[:min(chatSenders(cfg.ChatRate, len(targets)), len(streams))] {
			chatters = append(chatters, chatter{session: st.session, base: st.postURL, node: st.post})
		}
		side.Go(func() { chatRes = sendChats(windowCtx, ctx, hc, chatters, cfg.ChatRate, chat) })
	}
	switch {
	case cfg.BulkBytes > 0 && cfg.BulkVia == BulkGet:
		side.Go(func() { bulkRes = runBulkGet(windowCtx, hc, targets[0].base, cfg.BulkBytes) })
	case bulkStream != nil:
		side.Go(func() { bulkRes = runBulkSSE(windowCtx, hc, bulkStream.postURL, bulkStream, cfg.BulkBytes, clock) })
	}
	<-windowCtx.Done()
	window := time.Since(t0)
	endEv, endBytes, endTicks, _ := sums(streams)
	held := 0
	for _, st := range streams {
		st.windowTicks[1] = st.ticks.Load()
		st.endedInWindow = st.ended.Load()
		if !st.endedInWindow {
			held++
		}
	}
	if procs != nil {
		rep.Server, rep.Servers = procs.report(held)
	}
	if machEnd, err := ReadMachine(); err == nil && machErr == nil {
		rep.MachineCPU = MachineBusy(machStart, machEnd)
	}
	if selfEnd, err := ReadProc(0); err == nil {
		rep.Loadgen = ProcReport{CPUPercent: CPUPercent(selfStart, selfEnd), RSSStartKiB: selfStart.RSSKiB, RSSEndKiB: selfEnd.RSSKiB}
	}
	side.Wait()
	log.Info("window done", "label", cfg.Label, "held", held, "chats", chatRes.sent)

	// Drain: let chats in flight reach every stream still open.
	want := chatRes.sent * int64(held)
	drainUntil := time.Now().Add(cfg.Drain)
	for time.Now().Before(drainUntil) && ctx.Err() == nil {
		var got int64
		for _, st := range streams {
			got += st.chatRecv.Load()
		}
		if got >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopStreams()
	polling.Wait()
	for _, st := range streams {
		st.close()
	}
	if bulkStream != nil {
		bulkStream.close()
	}

	// Account.
	rep.Window = window.Seconds()
	rep.Held = held
	rep.Events = endEv - startEv
	rep.Bytes = endBytes - startBytes
	rep.EventsPerSec = float64(rep.Events) / window.Seconds()
	rep.MBPerSec = float64(rep.Bytes) / 1e6 / window.Seconds()
	rep.Ticks = endTicks - startTicks
	rep.ExpectedTicks = float64(alive) * rateSum * window.Seconds()
	if rep.ExpectedTicks > 0 {
		rep.Delivered = float64(rep.Ticks) / rep.ExpectedTicks
	}
	var lat, local, relayed Latencies
	for _, st := range streams {
		lat.Merge(&st.lat)
		local.Merge(&st.local)
		relayed.Merge(&st.relayed)
		rep.IDs.add(st.ids.stats)
		rep.Chat.Unmatched += st.unmatched
		rep.Chat.Deliveries += st.chatRecv.Load()
		if st.endReason != "" {
			rep.Drops++
			if rep.DropReasons == nil {
				rep.DropReasons = map[string]int{}
			}
			rep.DropReasons[st.endReason]++
		}
	}
	rep.Chat.Sent, rep.Chat.Failed, rep.Chat.LastError = chatRes.sent, chatRes.failed, chatRes.lastErr
	rep.Chat.Expected = want
	rep.Chat.Latency = lat.Summary()
	if len(targets) > 1 {
		l, r := local.Summary(), relayed.Summary()
		rep.Chat.Local, rep.Chat.Relayed = &l, &r
		rep.Nodes = nodeReports(targets, streams)
	}
	if cfg.BulkBytes > 0 && rep.Bulk == nil {
		rep.Bulk = &bulkRes
	}
	rep.LoadAvg[1] = LoadAvg()
	rep.KeptUp = rep.Held == cfg.Streams && rep.ConnectErrors == 0 && rep.Drops == 0 &&
		rep.IDs.Clean() && rep.Delivered >= cfg.KeepUp
	return rep, nil
}

// ramp opens the streams and hands each to a poller. It returns the streams
// that opened, in order.
func ramp(ctx, streamsCtx context.Context, cfg *Config, op *opener, channels []string, polls *pollers) ([]*stream, int, string) {
	rampCtx, cancel := context.WithTimeout(ctx, cfg.RampTimeout)
	defer cancel()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		opened  = make([]*stream, cfg.Streams)
		errs    int
		lastErr string
		workers sync.WaitGroup
	)
	for range min(cfg.Concurrency, cfg.Streams) {
		workers.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Streams || rampCtx.Err() != nil {
					return
				}
				st, err := op.open(rampCtx, i, channels)
				if err == nil {
					if err = polls.hold(streamsCtx, st); err != nil {
						st.close()
					}
				}
				if err != nil {
					mu.Lock()
					errs++
					lastErr = err.Error()
					mu.Unlock()
					continue
				}
				opened[i] = st
			}
		})
	}
	workers.Wait()
	streams := slices.DeleteFunc(opened, func(st *stream) bool { return st == nil })
	if n := cfg.Streams - len(streams) - errs; n > 0 {
		errs += n // never attempted: the ramp ran out of time
		lastErr = fmt.Sprintf("ramp timeout after %v", cfg.RampTimeout)
	}
	return streams, errs, lastErr
}

// sums adds up the streams' counters; alive counts those still open.
func sums(streams []*stream) (events, bytes, ticks int64, alive int) {
	for _, st := range streams {
		events += st.events.Load()
		bytes += st.bytes.Load()
		ticks += st.ticks.Load()
		if !st.ended.Load() {
			alive++
		}
	}
	return
}

// dialers returns the dialer of stream i: for IPv4 loopback targets, its
// source address is 127.0.0.(1 + i mod n).
func dialers(targets []target, n int) func(i int) *net.Dialer {
	if !allIPv4(targets) || n <= 1 {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return func(int) *net.Dialer { return d }
	}
	ds := make([]*net.Dialer, n)
	for k := range ds {
		ds[k] = &net.Dialer{
			Timeout:   10 * time.Second,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+k))},
		}
	}
	return func(i int) *net.Dialer { return ds[i%n] }
}

func fetchChannels(ctx context.Context, hc *http.Client, base string) ([]protocol.Channel, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/channels", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadgen: GET /channels: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("loadgen: GET /channels: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadgen: GET /channels: %s", resp.Status)
	}
	var cs []protocol.Channel
	if err := json.Unmarshal(body, &cs); err != nil {
		return nil, fmt.Errorf("loadgen: GET /channels: %w", err)
	}
	return cs, nil
}

// pickChannels checks the wanted channels against the server's (all of them
// when want is nil) and sums their tick rates.
func pickChannels(have []protocol.Channel, want []string) ([]string, float64, error) {
	rates := map[string]float64{}
	var all []string
	for _, c := range have {
		rates[c.Name] = c.Rate
		all = append(all, c.Name)
	}
	if want == nil {
		want = all
	}
	var sum float64
	for _, n := range want {
		r, ok := rates[n]
		if !ok {
			return nil, 0, fmt.Errorf("loadgen: the server has no channel %q (it has %s)", n, strings.Join(all, ", "))
		}
		sum += r
	}
	return want, sum, nil
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

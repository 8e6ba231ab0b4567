// load-gorilla: a WebSocket load generator on gorilla/websocket, independent of vigil's own
// framing code, so the benchmark harness can cross-check vigil-load against a second client.
// It takes vigil-load's flags and prints the same JSON lines.
//
// It opens many connections and holds them (answering the server's pings the way gorilla's
// default handler does, but counted) or runs echo round trips, one message in flight per
// connection (or, with --rate, paced: every connection sends on a schedule whether or not its
// echoes are back), then closes every connection with 1000 (unless --no-close).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var (
	target      = flag.String("url", "ws://127.0.0.1:8080/ws", "server URL")
	connections = flag.Int("connections", 100, "connections to open")
	mode        = flag.String("mode", "hold", "hold: keep the connections open; echo: round trips, one message in flight per connection")
	duration    = flag.Duration("duration", 10*time.Second, "how long to hold or echo")
	messageSize = flag.Int("message-size", 64, "echo message size in bytes")
	progress    = flag.Duration("progress", 0, "print a progress line this often (0: never)")
	sources     = flag.Int("sources", 254, "loopback source addresses to spread connections over (127.0.0.1 up to 127.0.0.254)")
	concurrency = flag.Int("concurrency", 256, "connection attempts in flight at once")
	noClose     = flag.Bool("no-close", false, "at the end drop TCP instead of closing with 1000")
	rate        = flag.Float64("rate", 0, "echo: round trips a second across all connections, open loop, each timed from when it was due (0: closed loop, one message in flight per connection)")
)

func init() {
	// vigil-load spells it -c as well as --connections.
	flag.IntVar(connections, "c", 100, "connections to open (short for --connections)")
}

// Counters shared by every connection; atomics so the read loops never contend on a lock.
var (
	open, connected, failed atomic.Int64
	pings, pongsSent        atomic.Int64
	echoes                  atomic.Int64
	echoing                 atomic.Bool
)

// epoch anchors send times: time.Since reads the monotonic clock, and an int64 is cheap to keep.
var epoch = time.Now()

// client is one connection. Its mutex is taken once per echo, never contended in practice:
// it orders the first send (from main) against later sends (from the read loop), which
// gorilla does not allow to overlap, and guards the latency samples main merges at the end.
// Paced (--rate), the connection's pacer goroutine is its only data writer, and the mutex
// guards the due times it shares with the read loop.
type client struct {
	conn *websocket.Conn
	mu   sync.Mutex
	sent time.Duration   // since epoch, when the message in flight was written
	rtts []time.Duration // echo round trips, appended while echoing
	// Paced: when each message in flight was due (since epoch), oldest first; echoes come
	// back in order, so an echo is the answer to the oldest.
	due []time.Duration
}

// payload is every echo message; gorilla copies it into its write buffer before masking, so
// one shared slice is safe.
var payload []byte

func main() {
	flag.Parse()
	if *mode != "hold" && *mode != "echo" {
		fail("--mode: %q is not hold or echo", *mode)
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "ws" {
		fail("--url: %q is not a ws://HOST:PORT/PATH URL", *target)
	}
	// vigil-load's bounds, so the two accept the same flags.
	if math.IsNaN(*rate) || math.IsInf(*rate, 0) || (*rate != 0 && (*rate < 0.001 || *rate > 10_000_000)) {
		fail("--rate: %v is not a rate; 0 (closed loop) or 0.001 to 10000000 messages a second", *rate)
	}
	payload = make([]byte, *messageSize)

	// SIGTERM/SIGINT cancel ctx: dials in flight give up and the run skips to "done".
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *progress > 0 {
		go func() {
			for range time.Tick(*progress) {
				emit(map[string]any{"event": "progress", "open": open.Load(), "pings": pings.Load(),
					"pongs_sent": pongsSent.Load(), "echoes": echoes.Load()})
			}
		}()
	}

	started := time.Now()
	var loops sync.WaitGroup
	clients := connectAll(ctx, u, &loops)
	emit(map[string]any{"event": "connected", "connections": len(clients), "failed": failed.Load(),
		"seconds": time.Since(started).Seconds()})

	interrupted := false
	if *mode == "hold" {
		interrupted = hold(ctx)
	} else {
		interrupted = echo(ctx, clients)
	}

	if !interrupted && !*noClose {
		closeAll(ctx, clients, &loops)
	}
	emit(map[string]any{"event": "done", "connected": connected.Load(), "failed": failed.Load(),
		"pings": pings.Load(), "pongs_sent": pongsSent.Load(), "still_open": open.Load(),
		"seconds": time.Since(started).Seconds()})
	// Exiting drops whatever is still open (--no-close, or a signal) without a close frame.
	os.Exit(0)
}

// connectAll dials --connections connections, --concurrency at a time, and starts each one's
// read loop as soon as it is open, so pings are answered while the rest are still dialing.
func connectAll(ctx context.Context, u *url.URL, loops *sync.WaitGroup) []*client {
	dialers := makeDialers(u)
	slots := make([]*client, *connections)
	var next atomic.Int64
	var workers sync.WaitGroup
	for w := 0; w < min(*concurrency, *connections); w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(slots) || ctx.Err() != nil {
					return
				}
				conn, _, err := dialers[i%len(dialers)].DialContext(ctx, u.String(), nil)
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted, not a failure of the server
					}
					if failed.Add(1) <= 10 {
						emit(map[string]any{"event": "connect_failed", "error": err.Error()})
					}
					continue
				}
				c := &client{conn: conn}
				conn.SetPingHandler(c.answerPing)
				connected.Add(1)
				open.Add(1)
				loops.Add(1)
				go c.readLoop(loops)
				slots[i] = c
			}
		}()
	}
	workers.Wait()
	clients := slots[:0]
	for _, c := range slots {
		if c != nil {
			clients = append(clients, c)
		}
	}
	return clients
}

// makeDialers returns one dialer per loopback source address when the server is on 127.x:
// each source address has its own ~28k ephemeral ports, so that is how a single process
// gets past them. Otherwise one dialer, kernel's choice of source.
func makeDialers(u *url.URL) []*websocket.Dialer {
	// Buffers: a small read buffer per connection and pooled write buffers, so 100k idle
	// connections cost little memory; larger echo messages simply bypass the buffers.
	pool := &sync.Pool{}
	base := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferPool: pool}
	if !strings.HasPrefix(u.Hostname(), "127.") {
		return []*websocket.Dialer{&base}
	}
	n := max(1, min(*sources, 254))
	dialers := make([]*websocket.Dialer, n)
	for i := range dialers {
		d := base
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}}
		d.NetDialContext = nd.DialContext
		dialers[i] = &d
	}
	return dialers
}

// answerPing is gorilla's default ping handler, counted: the same pong, the same 1 s write
// deadline, the same errors ignored.
func (c *client) answerPing(data string) error {
	pings.Add(1)
	pongsSent.Add(1)
	err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	if err == websocket.ErrCloseSent {
		return nil
	} else if e, ok := err.(net.Error); ok && e.Temporary() {
		return nil
	}
	return err
}

// readLoop reads until the connection ends. Pings and closes are handled inside NextReader;
// a data message is an echo: closed loop, answered with the next message while the echo window
// is open; paced, timed from when the message it answers was due.
func (c *client) readLoop(loops *sync.WaitGroup) {
	defer loops.Done()
	defer open.Add(-1)
	defer c.conn.Close()
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
		if !echoing.Load() {
			continue
		}
		c.mu.Lock()
		if *rate > 0 {
			if len(c.due) > 0 {
				c.rtts = append(c.rtts, time.Since(epoch)-c.due[0])
				c.due = c.due[1:]
				echoes.Add(1)
			}
			c.mu.Unlock()
			continue
		}
		c.rtts = append(c.rtts, time.Since(epoch)-c.sent)
		echoes.Add(1)
		err = c.send()
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// send writes the next echo message; the caller holds c.mu.
func (c *client) send() error {
	c.sent = time.Since(epoch)
	return c.conn.WriteMessage(websocket.BinaryMessage, payload)
}

// prSetTimerSlack is PR_SET_TIMERSLACK from <linux/prctl.h> (package syscall does not name it).
const prSetTimerSlack = 29

// pace is the one sender of a paced echo (--rate): connection i's messages are due every
// interval from first + i×interval/N on (since epoch), whether or not the earlier echoes are
// back (open loop), until the echo window closes. A message sent late (the pacer woken late, a
// write the server holds up) is still timed from when it was due, and the ones missed
// meanwhile go at once, so lateness shows in the latency instead of lowering the rate.
//
// Why one goroutine on its own thread, sleeping in nanosleep(2) with a 1 ns timer slack, and
// not a time.Timer per connection: Go's timers (1.19) wake through epoll_wait's millisecond
// timeout, so a sub-millisecond wait comes up to 1 ms late. Measured on the bench machine (50
// connections, 2000 and 10,000 messages a second), messages left a median ~0.5 ms after they
// were due with timers, against a paced loopback round trip of ~0.1 ms; ~75 µs with nanosleep
// at the default 50 µs slack; ~30 µs at 1 ns. The cost: a write the kernel cannot take at once
// holds up the other connections' sends too (each still timed from when it was due).
func pace(clients []*client, first, interval time.Duration) {
	// The slack is the thread's, so the thread stays this goroutine's. Best effort: a kernel
	// that refuses keeps the default 50 µs.
	runtime.LockOSThread()
	syscall.Syscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	if len(clients) == 0 {
		return
	}
	n := time.Duration(len(clients))
	live := make([]bool, len(clients))
	for i := range live {
		live[i] = true
	}
	for k := time.Duration(0); ; k++ {
		for i, c := range clients {
			due := first + k*interval + interval*time.Duration(i)/n
			for {
				wait := due - time.Since(epoch)
				if !echoing.Load() {
					return
				}
				if wait <= 0 {
					break
				}
				// At most 50 ms at a time, so a slow rate still notices the window closing.
				sleep := syscall.NsecToTimespec(int64(min64(wait, 50*time.Millisecond)))
				syscall.Nanosleep(&sleep, nil)
			}
			if !live[i] {
				continue
			}
			c.mu.Lock()
			c.due = append(c.due, due)
			c.mu.Unlock()
			if c.conn.WriteMessage(websocket.BinaryMessage, payload) != nil {
				live[i] = false // its read loop ends too, and counts nothing more
			}
		}
	}
}

// hold waits out --duration, or until the server has closed every connection; it reports
// whether a signal cut it short.
func hold(ctx context.Context) bool {
	end := time.NewTimer(*duration)
	defer end.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-end.C:
			return false
		case <-tick.C:
			if open.Load() == 0 {
				return false
			}
		}
	}
}

// echo runs the round trips for --duration and prints the "echo" line; it reports whether a
// signal cut it short.
func echo(ctx context.Context, clients []*client) bool {
	echoing.Store(true)
	start := time.Now()
	if *rate > 0 {
		// As vigil-load: each connection sends every N/rate (at least 1 µs, at most an hour),
		// the connections' phases spread evenly over one interval so the total is steady.
		interval := time.Duration(math.Min(3600e9, math.Max(1e3, float64(max(1, len(clients)))/(*rate)*1e9)))
		go pace(clients, time.Since(epoch)+10*time.Millisecond, interval)
	} else {
		for _, c := range clients {
			c.mu.Lock()
			c.send() // a failed send shows up as the read loop ending
			c.mu.Unlock()
		}
	}
	interrupted := false
	select {
	case <-ctx.Done():
		interrupted = true
	case <-time.After(*duration):
	}
	echoing.Store(false)
	elapsed := time.Since(start).Seconds()
	messages := echoes.Load()

	var all []time.Duration
	for _, c := range clients {
		c.mu.Lock()
		all = append(all, c.rtts...)
		c.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	report := map[string]any{"event": "echo", "messages": messages, "seconds": elapsed,
		"rate": float64(messages) / elapsed, "paced_rate": *rate, "count": len(all)}
	if len(all) > 0 {
		report["p50_ms"] = ms(percentile(all, 50))
		report["p99_ms"] = ms(percentile(all, 99))
		report["max_ms"] = ms(all[len(all)-1])
	}
	emit(report)
	if !interrupted {
		time.Sleep(200 * time.Millisecond) // let the last round trips land before closing
	}
	return interrupted
}

// closeAll sends close 1000 on every connection and waits up to 10 s for the server's close
// replies to end the read loops (gorilla closes the TCP connection then).
func closeAll(ctx context.Context, clients []*client, loops *sync.WaitGroup) {
	frame := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, c := range clients {
		c.conn.WriteControl(websocket.CloseMessage, frame, time.Now().Add(time.Second))
	}
	ended := make(chan struct{})
	go func() { loops.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, rank)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var stdout sync.Mutex

// emit prints one JSON line; each line is a single unbuffered write, so it is out at once.
func emit(event map[string]any) {
	line, _ := json.Marshal(event)
	stdout.Lock()
	os.Stdout.Write(append(line, '\n'))
	stdout.Unlock()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "load-gorilla: "+format+"\n", args...)
	os.Exit(2)
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func min64(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

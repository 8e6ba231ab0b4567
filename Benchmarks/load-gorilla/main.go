// load-gorilla: a WebSocket load generator on gorilla/websocket, independent of vigil's own
// framing code, so the benchmark harness can cross-check vigil-load against a second client.
// It takes vigil-load's flags and prints the same JSON lines.
//
// It opens many connections and holds them (answering the server's pings the way gorilla's
// default handler does, but counted) or runs echo round trips, one message in flight per
// connection, then closes every connection with 1000 (unless --no-close).
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
type client struct {
	conn *websocket.Conn
	mu   sync.Mutex
	sent time.Duration   // since epoch, when the message in flight was written
	rtts []time.Duration // echo round trips, appended while echoing
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
// a data message is an echo, answered with the next message while the echo window is open.
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
	for _, c := range clients {
		c.mu.Lock()
		c.send() // a failed send shows up as the read loop ending
		c.mu.Unlock()
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
		"rate": float64(messages) / elapsed, "count": len(all)}
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

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

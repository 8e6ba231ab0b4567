// The baseline: a WebSocket echo server on the seed documents' stack, Go with gorilla/websocket,
// supervising connections the classic way: a read deadline of ping interval + pong timeout,
// extended by a pong handler, and a ticker goroutine sending pings under a write deadline.
//
// It prints "ready ADDR" once listening and one "close UNIX_NANOS REASON" line per ended
// connection, so the benchmark harness can time detection and count closes; on SIGUSR1, one
// "mallocs N frees N pongs N" line (the Go runtime's heap object counts, and pongs received).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

var (
	addr         = flag.String("addr", "127.0.0.1:8090", "listen address")
	path         = flag.String("path", "/ws", "WebSocket route")
	pingInterval = flag.Duration("ping-interval", 30*time.Second, "how often to ping (P)")
	pongTimeout  = flag.Duration("pong-timeout", 10*time.Second, "how late a pong may be (T)")
	maxMessage   = flag.Int64("max-message", 1<<20, "largest message accepted")
	compression  = flag.Bool("compression", false, "negotiate permessage-deflate (gorilla's EnableCompression) and compress what it echoes")
	level        = flag.Int("compression-level", 1, "flate level when -compression is on (vigild's default is 1)")
	writeWait    = 10 * time.Second
)

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// closes collects close lines; a flusher writes them out every 100 ms.
type closeLog struct {
	sync.Mutex
	w *bufio.Writer
}

func (c *closeLog) add(reason string) {
	c.Lock()
	fmt.Fprintf(c.w, "close %d %s\n", time.Now().UnixNano(), reason)
	c.Unlock()
}

func (c *closeLog) flush() {
	c.Lock()
	c.w.Flush()
	c.Unlock()
}

var closes = &closeLog{w: bufio.NewWriterSize(os.Stdout, 1<<16)}

// pongs counts the pongs received, for the harness's counts per round trip (SIGUSR1).
var pongs atomic.Int64

func reason(err error) string {
	var closeErr *websocket.CloseError
	var netErr net.Error
	switch {
	case errors.As(err, &closeErr):
		return fmt.Sprintf("close_%d", closeErr.Code)
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	default:
		return "error"
	}
}

func serve(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	if *compression {
		conn.EnableWriteCompression(true)
		if err := conn.SetCompressionLevel(*level); err != nil {
			log.Fatal(err)
		}
	}
	conn.SetReadLimit(*maxMessage)
	deadline := *pingInterval + *pongTimeout
	conn.SetReadDeadline(time.Now().Add(deadline))
	conn.SetPongHandler(func(string) error {
		pongs.Add(1)
		return conn.SetReadDeadline(time.Now().Add(deadline))
	})

	done := make(chan struct{})
	defer close(done)
	go func() {
		ticker := time.NewTicker(*pingInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
					return
				}
			case <-done:
				return
			}
		}
	}()

	for {
		kind, message, err := conn.ReadMessage()
		if err != nil {
			closes.add(reason(err))
			return
		}
		conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := conn.WriteMessage(kind, message); err != nil {
			closes.add("write_error")
			return
		}
	}
}

func main() {
	flag.Parse()
	upgrader.EnableCompression = *compression
	http.HandleFunc(*path, serve)
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready %s\n", listener.Addr())
	os.Stdout.Sync()
	go func() {
		for range time.Tick(100 * time.Millisecond) {
			closes.flush()
		}
	}()
	// SIGUSR1 prints the Go heap's allocation count, so the harness can count allocations per
	// round trip over a window (the Go heap is not malloc: an LD_PRELOAD counter sees nothing).
	go func() {
		report := make(chan os.Signal, 1)
		signal.Notify(report, syscall.SIGUSR1)
		for range report {
			var stats runtime.MemStats
			runtime.ReadMemStats(&stats)
			closes.Lock()
			fmt.Fprintf(closes.w, "mallocs %d frees %d pongs %d\n", stats.Mallocs, stats.Frees, pongs.Load())
			closes.w.Flush()
			closes.Unlock()
		}
	}()
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		closes.flush()
		os.Exit(0)
	}()
	log.Fatal(http.Serve(listener, nil))
}

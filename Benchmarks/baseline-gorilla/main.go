// The baseline: a WebSocket echo server on the seed documents' stack, Go with gorilla/websocket,
// supervising connections the classic way: a read deadline of ping interval + pong timeout,
// extended by a pong handler, and a ticker goroutine sending pings under a write deadline.
//
// It prints "ready ADDR" once listening and one "close UNIX_NANOS REASON" line per ended
// connection, so the benchmark harness can time detection and count closes.
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
	"sync"
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
	conn.SetReadLimit(*maxMessage)
	deadline := *pingInterval + *pongTimeout
	conn.SetReadDeadline(time.Now().Add(deadline))
	conn.SetPongHandler(func(string) error {
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
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		closes.flush()
		os.Exit(0)
	}()
	log.Fatal(http.Serve(listener, nil))
}

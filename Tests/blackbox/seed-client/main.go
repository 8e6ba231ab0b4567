// seed-client: the client from vigil's source document, on golang.org/x/net/websocket as it was
// written there. It dials ws://ADDRESS/ws with the origin http://ADDRESS/ (the trailing slash is
// how Go code passes it), reads in a second goroutine that hands each reply to the main loop over
// a channel, sends {"requestID": N, "command": "status"} every 100 ms, and closes after 20 replies.
//
// It prints one line per reply ("reply N <the message as received>") and exits 0 after ws.Close(), or prints the
// failure and exits 1. The black-box suite (test_seed.py) checks the lines and vigild's record.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/net/websocket"
)

type request struct {
	RequestID int    `json:"requestID"`
	Command   string `json:"command"`
}

func main() {
	address := flag.String("address", "127.0.0.1:8080", "vigild's host:port")
	path := flag.String("path", "/ws", "the WebSocket path")
	replies := flag.Int("replies", 20, "replies to wait for before closing")
	flag.Parse()

	ws, err := websocket.Dial(fmt.Sprintf("ws://%s%s", *address, *path), "", fmt.Sprintf("http://%s/", *address))
	if err != nil {
		fmt.Printf("Dial failed: %v\n", err)
		os.Exit(1)
	}

	incoming := make(chan string)
	failed := make(chan error, 1)
	go func() {
		for {
			var message string
			if err := websocket.Message.Receive(ws, &message); err != nil {
				failed <- err
				return
			}
			incoming <- message
		}
	}()

	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	next, received := 1, 0
	for received < *replies {
		select {
		case <-ticker.C:
			if err := websocket.JSON.Send(ws, request{RequestID: next, Command: "status"}); err != nil {
				fmt.Printf("Send failed: %v\n", err)
				os.Exit(1)
			}
			next++
		case message := <-incoming:
			received++
			fmt.Printf("reply %d %s\n", received, message)
		case err := <-failed:
			fmt.Printf("Receive failed after %d replies: %v\n", received, err)
			os.Exit(1)
		}
	}
	if err := ws.Close(); err != nil {
		fmt.Printf("Close failed: %v\n", err)
		os.Exit(1)
	}
}

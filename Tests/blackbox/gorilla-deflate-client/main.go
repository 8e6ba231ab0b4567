// gorilla-deflate-client: a gorilla/websocket client with compression enabled (it offers
// "permessage-deflate; server_no_context_takeover; client_no_context_takeover", and compresses
// what it writes), for the black-box suite: it connects to -url, sends -messages text messages
// of about -size compressible bytes, expects each echoed unchanged, closes with 1000, and prints
// one JSON line: the extension the server agreed to and the messages echoed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/gorilla/websocket"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "server URL")
	messages := flag.Int("messages", 20, "messages to send and expect back")
	size := flag.Int("size", 1000, "about how many bytes each message has")
	flag.Parse()

	dialer := websocket.Dialer{EnableCompression: true}
	conn, response, err := dialer.Dial(*url, nil)
	if err != nil {
		fmt.Printf("{\"error\": %q}\n", err.Error())
		os.Exit(1)
	}
	conn.EnableWriteCompression(true)
	echoed := 0
	for i := 0; i < *messages; i++ {
		text := fmt.Sprintf("message %d: %s", i, strings.Repeat("gorilla compresses this ", *size/24+1))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			fmt.Printf("{\"error\": %q}\n", err.Error())
			os.Exit(1)
		}
		kind, data, err := conn.ReadMessage()
		if err != nil || kind != websocket.TextMessage || string(data) != text {
			fmt.Printf("{\"error\": \"echo %d differs or failed: %v\"}\n", i, err)
			os.Exit(1)
		}
		echoed++
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"))
	conn.ReadMessage() // the server's close
	conn.Close()
	line, _ := json.Marshal(map[string]interface{}{
		"extensions": response.Header.Get("Sec-WebSocket-Extensions"),
		"echoed":     echoed,
	})
	fmt.Println(string(line))
}

module vigil/gorilla-deflate-client

go 1.19

require github.com/gorilla/websocket v1.5.0

// Debian's golang-github-gorilla-websocket-dev: no module proxy is needed (GOPROXY=off).
replace github.com/gorilla/websocket => /usr/share/gocode/src/github.com/gorilla/websocket

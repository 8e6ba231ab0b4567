module vigil/seed-client

go 1.19

require golang.org/x/net v0.7.0

// Debian's golang-golang-x-net-dev: no module proxy is needed (GOPROXY=off).
replace golang.org/x/net => /usr/share/gocode/src/golang.org/x/net

// Command notes is the Go project of the build benchmark: a small HTTP
// backend with no modules outside the standard library, so that its
// build needs no network.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	s := newStore()
	mux := http.NewServeMux()
	mux.HandleFunc("/notes", s.handleNotes)
	mux.HandleFunc("/notes/", s.handleNote)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	log.Printf("listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

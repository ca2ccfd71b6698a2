// Command web is the samples' web service: every request is answered with
// one line naming the replica that served it, so requests sent to one
// published port show how they are spread over the replicas.
//
//	GET /healthz   "ok"
//	anything else  "hello from <hostname> (visit #N): <greeting>" (no
//	               greeting when kv has none)
//
// The visit counter and the greeting live in the kv service. Environment:
// WEB_ADDR (listen address, default ":80"), KV_ADDR (the kv service,
// default "kv:7000"). When KV_ADDR is unset, WORDPRESS_DB_HOST (port 3306
// unless given) is used, so the wordpress sample's stand-in takes the seed's
// variables as they are. Without kv the reply still names the replica.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

var client = &http.Client{Timeout: 2 * time.Second}

func kvAddr() string {
	if a := os.Getenv("KV_ADDR"); a != "" {
		return a
	}
	if h := os.Getenv("WORDPRESS_DB_HOST"); h != "" {
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "3306")
		}
		return h
	}
	return "kv:7000"
}

// call sends one request to kv and returns the trimmed body of a 2xx reply.
func call(ctx context.Context, method, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("web: ")
	addr := os.Getenv("WEB_ADDR")
	if addr == "" {
		addr = ":80"
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	kv := "http://" + kvAddr()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		visit, err := call(r.Context(), http.MethodPost, kv+"/incr/visits")
		if err != nil {
			log.Printf("kv: %v", err)
			fmt.Fprintf(w, "hello from %s (kv at %s unavailable)\n", host, kvAddr())
			return
		}
		if greeting, err := call(r.Context(), http.MethodGet, kv+"/kv/greeting"); err == nil {
			fmt.Fprintf(w, "hello from %s (visit #%s): %s\n", host, visit, greeting)
			return
		}
		fmt.Fprintf(w, "hello from %s (visit #%s)\n", host, visit)
	})

	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Printf("%s listening on %s, kv at %s", host, addr, kvAddr())
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	log.Print("stopped")
}

// Command seed is the samples' one-shot init job: it writes key=value pairs
// into the kv service and exits 0, or exits 1 when kv cannot be reached.
//
//	seed [-nx] [-kv HOST:PORT] KEY=VALUE...
//
// With -nx a key that already has a value keeps it, so the job can run on
// every `up` without overwriting what the named volume kept.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	def := os.Getenv("KV_ADDR")
	if def == "" {
		def = "kv:7000"
	}
	addr := flag.String("kv", def, "address of the kv service")
	nx := flag.Bool("nx", false, "keep values that are already set")
	tries := flag.Int("tries", 20, "attempts per key, 250ms apart")
	flag.Parse()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, kv := range flag.Args() {
		key, value, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			fmt.Fprintf(os.Stderr, "seed: %q is not KEY=VALUE\n", kv)
			os.Exit(2)
		}
		u := "http://" + *addr + "/kv/" + url.PathEscape(key)
		if *nx {
			u += "?nx=1"
		}
		var err error
		var reply string
		for i := 0; i < *tries; i++ {
			if i > 0 {
				time.Sleep(250 * time.Millisecond)
			}
			var resp *http.Response
			resp, err = client.Post(u, "text/plain", strings.NewReader(value))
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			reply = strings.TrimSpace(string(b))
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("%s: %s", resp.Status, reply)
				continue
			}
			break
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "seed: %s: %v\n", key, err)
			os.Exit(1)
		}
		fmt.Printf("seed: %s %s\n", key, reply)
	}
	fmt.Println("seed: done")
}

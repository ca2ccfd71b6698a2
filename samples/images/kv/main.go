// Command kv is the samples' stand-in for a database: a small key-value
// store over HTTP that keeps its data in one JSON file, so a named volume
// mounted on its data directory keeps the data across down and up.
//
//	GET  /health          200 once the data is loaded (503 while warming up)
//	GET  /kv/{key}        the value, or 404
//	POST /kv/{key}        sets the value to the request body (?nx=1: only if absent)
//	PUT  /kv/{key}        same as POST
//	POST /incr/{key}      adds 1 to an integer value and returns it
//	GET  /                every key and value, one "key=value" a line
//
// Environment: KV_ADDR (listen address, default ":7000"), KV_DATA (data
// directory, default "/data"), KV_WARMUP (a duration during which /health
// answers 503, to show health-gated start-up; default 0).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type store struct {
	mu   sync.Mutex
	path string
	data map[string]string
}

func open(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &store{path: filepath.Join(dir, "kv.json"), data: map[string]string{}}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return s, nil
}

// save writes the whole map to a temporary file, syncs it and renames it
// over the data file, so a crash leaves either the old or the new data.
// The caller holds s.mu.
func (s *store) save() error {
	b, err := json.MarshalIndent(s.data, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(append(b, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func (s *store) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// set stores value under key; with onlyIfAbsent an existing value is kept.
// It reports whether the value was written.
func (s *store) set(key, value string, onlyIfAbsent bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; ok && onlyIfAbsent {
		return false, nil
	}
	old, had := s.data[key]
	s.data[key] = value
	if err := s.save(); err != nil {
		if had {
			s.data[key] = old
		} else {
			delete(s.data, key)
		}
		return false, err
	}
	return true, nil
}

func (s *store) incr(key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.data[key]
	n := int64(0)
	if had {
		var err error
		if n, err = strconv.ParseInt(old, 10, 64); err != nil {
			return 0, fmt.Errorf("value of %q is not an integer", key)
		}
	}
	n++
	s.data[key] = strconv.FormatInt(n, 10)
	if err := s.save(); err != nil {
		if had {
			s.data[key] = old
		} else {
			delete(s.data, key)
		}
		return 0, err
	}
	return n, nil
}

func (s *store) dump(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s=%s\n", k, s.data[k])
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("kv: ")
	addr := env("KV_ADDR", ":7000")
	dir := env("KV_DATA", "/data")
	warmup, err := time.ParseDuration(env("KV_WARMUP", "0s"))
	if err != nil {
		log.Fatalf("KV_WARMUP: %v", err)
	}
	s, err := open(dir)
	if err != nil {
		log.Fatal(err)
	}
	ready := time.Now().Add(warmup)
	log.Printf("loaded %d keys from %s", len(s.data), s.path)
	if db := os.Getenv("MYSQL_DATABASE"); db != "" {
		log.Printf("stand-in for database %q (user %q)", db, os.Getenv("MYSQL_USER"))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if time.Now().Before(ready) {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { s.dump(w) })
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.get(r.PathValue("key"))
		if !ok {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		io.WriteString(w, v)
	})
	setHandler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := r.PathValue("key")
		wrote, err := s.set(key, string(body), r.URL.Query().Get("nx") == "1")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if wrote {
			log.Printf("set %s", key)
			fmt.Fprintln(w, "stored")
		} else {
			fmt.Fprintln(w, "kept")
		}
	}
	mux.HandleFunc("POST /kv/{key}", setHandler)
	mux.HandleFunc("PUT /kv/{key}", setHandler)
	mux.HandleFunc("POST /incr/{key}", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.incr(r.PathValue("key"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintln(w, n)
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
	log.Printf("listening on %s", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	log.Print("stopped")
}

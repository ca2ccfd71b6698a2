// Package bench measures berth's moving parts; benchmarks report numbers and
// never fail.
package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berthrun/berth/scale"
)

const (
	bulkBytes  = 256 << 20 // per bulk transfer
	roundTrips = 2000      // per latency series
	msgSize    = 64        // bytes of one request and of its reply
)

// Modes of the bench backend, chosen by the first byte a client sends.
const (
	modeSink = 's' // read until EOF, then answer the byte count (8 bytes) and close
	modeEcho = 'e' // send back everything read until EOF
)

// backend is the TCP server on 127.0.0.1 both paths reach.
type backend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startBackend(b *testing.B) *backend {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Skipf("backend: %v", err)
	}
	s := &backend{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	b.Cleanup(s.stop)
	return s
}

func (s *backend) serve(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeSink:
		buf := make([]byte, 256<<10)
		var n int64
		for {
			m, err := c.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		binary.Write(c, binary.BigEndian, n)
	case modeEcho:
		buf := make([]byte, 32<<10)
		for {
			m, err := c.Read(buf)
			if m > 0 {
				if _, werr := c.Write(buf[:m]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}

func (s *backend) stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// bench holds the two paths to the same backend.
type bench struct {
	direct, proxied string
}

func setup(b *testing.B) bench {
	be := startBackend(b)
	p := scale.NewProxy(scale.PortSpec{Protocol: "tcp", HostIP: "127.0.0.1", Name: "bench"})
	p.SetBackends([]scale.Backend{{ID: "b0", Addr: be.ln.Addr().String(), Healthy: true}})
	if err := p.Start(context.Background()); err != nil {
		b.Skipf("proxy: %v", err)
	}
	b.Cleanup(func() { p.Close() })
	return bench{direct: be.ln.Addr().String(), proxied: p.Addr().String()}
}

// BenchmarkProxy compares berth's TCP proxy (package scale, in process)
// with a direct connection to the same loopback backend.
func BenchmarkProxy(b *testing.B) {
	paths := setup(b)
	comparePaths(b, paths, "in-process proxy → loopback server", roundTrips)
}

// proxyRuns is how many bulk transfers, and series of round trips, each
// path makes per benchmark iteration; the paths take turns.
const proxyRuns = 3

// comparePaths measures bulk throughput and round-trip latency over both
// paths, reports them and records them in the table under label. Errors
// are reported, never fatal: a benchmark prints.
func comparePaths(b *testing.B, paths bench, label string, newConnTrips int) {
	var mbs [2][]float64
	var one, fresh [2][]time.Duration
	fail := func(what string, k int, err error) {
		b.Logf("%s (%s): %v", what, name(k), err)
		note("%s: %s over the %s path failed: %v", label, what, name(k), err)
		record(row{sec: secProxy, what: label, berth: "failed", base: "—", source: "see note", ratio: "—"})
	}
	for i := range b.N {
		for r := range proxyRuns {
			for _, k := range order(i + r) {
				d, err := bulk(paths.addr(k), bulkBytes)
				if err != nil {
					fail("bulk transfer", k, err)
					return
				}
				mbs[k] = append(mbs[k], float64(bulkBytes)/(1<<20)/d.Seconds())
			}
			for _, k := range order(i + r) {
				s, err := rttOneConn(paths.addr(k), roundTrips)
				if err != nil {
					fail("round trips on one connection", k, err)
					return
				}
				one[k] = append(one[k], s...)
				s, err = rttNewConn(paths.addr(k), newConnTrips)
				if err != nil {
					fail("round trips on new connections", k, err)
					return
				}
				fresh[k] = append(fresh[k], s...)
			}
		}
	}
	tput := [2]float64{medianF(mbs[0]), medianF(mbs[1])}
	var p50, p99, np50, np99 [2]time.Duration
	for k := range 2 {
		slices.Sort(one[k])
		slices.Sort(fresh[k])
		p50[k], p99[k] = percentile(one[k], 0.50), percentile(one[k], 0.99)
		np50[k], np99[k] = percentile(fresh[k], 0.50), percentile(fresh[k], 0.99)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(tput[0], "direct-MB/s")
	b.ReportMetric(tput[1], "proxy-MB/s")
	b.ReportMetric(tput[1]/tput[0], "proxy/direct-throughput")
	b.ReportMetric(micros(p50[1])/micros(p50[0]), "proxy/direct-p50")
	b.ReportMetric(micros(p99[1])/micros(p99[0]), "proxy/direct-p99")
	b.Logf("bulk %d MiB x%d: direct %.0f MB/s, proxy %.0f MB/s; one conn p50 %v/%v p99 %v/%v; new conns p50 %v/%v p99 %v/%v (direct/proxy)",
		bulkBytes>>20, len(mbs[0]), tput[0], tput[1], p50[0], p50[1], p99[0], p99[1], np50[0], np50[1], np99[0], np99[1])

	src := "direct connection, this run"
	record(row{sec: secProxy, what: label + ": bulk throughput", runs: len(mbs[1]),
		berth: fmt.Sprintf("%.0f MB/s", tput[1]), base: fmt.Sprintf("%.0f MB/s", tput[0]), source: src,
		ratio: percent(tput[1] / tput[0]), target: "≥ 90%", met: yesNo(tput[1] >= 0.9*tput[0])})
	lat := func(what string, n int, got, base time.Duration) {
		record(row{sec: secProxy, what: label + ": " + what, runs: n, berth: us(got), base: us(base), source: src,
			ratio: times(float64(got) / float64(base))})
	}
	lat("round trip p50, one connection", len(one[1]), p50[1], p50[0])
	lat("round trip p99, one connection", len(one[1]), p99[1], p99[0])
	lat("connect+round trip p50, new connections", len(fresh[1]), np50[1], np50[0])
	lat("connect+round trip p99, new connections", len(fresh[1]), np99[1], np99[0])
}

func (p bench) addr(k int) string {
	if k == 0 {
		return p.direct
	}
	return p.proxied
}

func name(k int) string { return [2]string{"direct", "proxy"}[k] }

// order alternates which path goes first, so that neither always runs on a
// warmer or a colder machine.
func order(i int) []int {
	if i%2 == 0 {
		return []int{0, 1}
	}
	return []int{1, 0}
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// bulk sends n bytes to the sink at addr and returns the time from dialling
// to the sink's acknowledgement of the count.
func bulk(addr string, n int64) (time.Duration, error) {
	buf := make([]byte, 256<<10)
	buf[0] = modeSink
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.Write(buf[:1]); err != nil {
		return 0, err
	}
	buf[0] = 0
	for left := n; left > 0; {
		m, err := c.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			return 0, err
		}
		left -= int64(m)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	var got int64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("sink counted %d bytes, sent %d", got, n)
	}
	return time.Since(start), nil
}

// rttNewConn times n request/response exchanges, each on a new connection:
// dial, send, read the reply, close.
func rttNewConn(addr string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	req := make([]byte, 1+msgSize)
	req[0] = modeEcho
	reply := make([]byte, msgSize+1)
	for range n {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Write(req)
		if err == nil {
			_, err = io.ReadFull(c, reply[:len(req)-1])
		}
		c.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// rttOneConn times n request/response exchanges on one connection.
func rttOneConn(addr string, n int) ([]time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write([]byte{modeEcho}); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	msg := make([]byte, msgSize)
	reply := make([]byte, msgSize)
	for range n {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	if len(out) != n {
		return nil, errors.New("short series")
	}
	return out, nil
}

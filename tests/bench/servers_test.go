package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrun/berth/tests/harness"
)

// The real-server benchmark: redis, PostgreSQL and nginx from Debian's
// packages, in containers of an image made offline by tests/debian; the
// clients (redis-benchmark, pgbench, wrk; scripts/deps.sh --bench) run on
// the host, which here is the sandbox's network namespace. Each load runs
// over two paths to the same server, taking turns: the published port on
// 127.0.0.1, and the container's own address on the bridge (direct). Both
// cross the same veth and bridge to the same process; the published path
// adds the translation (DNAT, masquerade from 127.0.0.0/8), or the userspace
// proxy, and nothing else, so their ratio is the cost of publishing. A
// server on the host would be no baseline for that: no container path, veth
// or bridge, can match loopback.

// serverPackages are the servers' Debian packages, one image for the three.
var serverPackages = []string{"redis-server", "postgresql", "nginx-light"}

// serverRuns is how many times each load runs over each path; the paths
// take turns, a run of one right after a run of the other.
const serverRuns = 5

// loadSeconds is about how long one run of a load lasts.
const loadSeconds = 3

// The servers' ports in their containers.
const (
	redisPort = 6379
	pgPort    = 5432
	httpPort  = 80
)

// serversCompose is the stack: redis without persistence, a PostgreSQL
// cluster made at start without fsync (the loads measure the network path,
// not the disk), nginx without its access log.
const serversCompose = `name: benchservers-%[1]s
services:
  redis:
    image: benchservers
    command: ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
    ports: ["127.0.0.1:%[2]d:6379"]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
      start_interval: 200ms
      start_period: 30s
  postgres:
    image: benchservers
    command:
      - sh
      - -c
      - |
        set -e
        bin=$$(echo /usr/lib/postgresql/*/bin)
        d=/var/lib/postgresql/bench
        mkdir -p $$d && chown postgres:postgres $$d
        as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"
        $$as_postgres $$bin/initdb -D $$d -U postgres --auth=trust >/dev/null
        echo "host all all 0.0.0.0/0 trust" >> $$d/pg_hba.conf
        exec $$as_postgres $$bin/postgres -D $$d -c listen_addresses='*' -c fsync=off -c synchronous_commit=off -c full_page_writes=off
    stop_signal: SIGINT
    stop_grace_period: 10s
    ports: ["127.0.0.1:%[3]d:5432"]
    healthcheck:
      test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
      interval: 1s
      start_interval: 200ms
      start_period: 60s
  nginx:
    image: benchservers
    command: ["sh", "-c", "sed -i 's|access_log .*|access_log off;|' /etc/nginx/nginx.conf && exec nginx -g 'daemon off;'"]
    ports: ["127.0.0.1:%[4]d:80"]
`

// load is one client workload; run returns its throughput, higher is
// better, against host:port.
type load struct {
	name string // the row's name
	unit string
	tool string // the program it needs
	run  func(ctx context.Context, tool, host string, port int) (float64, error)
}

func serverLoads() []load {
	return []load{
		redisLoad("redis-benchmark SET+GET, 50 clients", 1),
		redisLoad("redis-benchmark SET+GET -P 16, 50 clients", 16),
		{"pgbench -c 4 -j 2, scale 5 (TPC-B)", "tps", "pgbench", func(ctx context.Context, tool, host string, port int) (float64, error) {
			out, err := runTool(ctx, tool, "-h", host, "-p", strconv.Itoa(port), "-U", "postgres", "-n", "-c", "4", "-j", "2",
				"-T", strconv.Itoa(loadSeconds), "postgres")
			if err != nil {
				return 0, err
			}
			return firstFloat(out, `(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
		}},
		{"wrk -t 2 -c 32 → nginx, 615-byte page", "req/s", "wrk", func(ctx context.Context, tool, host string, port int) (float64, error) {
			out, err := runTool(ctx, tool, "-t", "2", "-c", "32", "-d", fmt.Sprintf("%ds", loadSeconds),
				fmt.Sprintf("http://%s/", net.JoinHostPort(host, strconv.Itoa(port))))
			if err != nil {
				return 0, err
			}
			if n, _ := firstFloat(out, `(?m)Non-2xx or 3xx responses: ([0-9]+)`); n > 0 {
				return 0, fmt.Errorf("wrk: %v answers were not 2xx or 3xx:\n%s", n, out)
			}
			return firstFloat(out, `(?m)^Requests/sec:\s+([0-9.]+)`)
		}},
	}
}

// redisLoad is redis-benchmark's SET and GET with pipeline requests in
// flight per client. redis-benchmark has no duration flag: a first short
// run sizes the others to last about loadSeconds on this machine.
func redisLoad(name string, pipeline int) load {
	n := 0
	return load{name, "req/s", "redis-benchmark", func(ctx context.Context, tool, host string, port int) (float64, error) {
		if n == 0 {
			rps, err := redisBench(ctx, tool, host, port, pipeline, 2000*pipeline)
			if err != nil {
				return 0, err
			}
			// Two tests, SET and GET, each half of the time.
			n = int(min(max(rps*loadSeconds/2, 2000), 5e6))
		}
		return redisBench(ctx, tool, host, port, pipeline, n)
	}}
}

// BenchmarkPublishedServers measures each load over a published port and
// over the container's address, for each way berth serves the port: one
// store, one project per way, one after the other.
func BenchmarkPublishedServers(b *testing.B) {
	loads := serverLoads()
	tools := map[string]string{}
	var missing []string
	for _, l := range loads {
		if _, ok := tools[l.tool]; ok {
			continue
		}
		p, err := findTool(l.tool)
		if err != nil {
			missing = append(missing, l.tool)
		}
		tools[l.tool] = p
	}
	if len(missing) > 0 {
		note("real servers: %s not found (scripts/deps.sh --bench installs them); their rows are left out", strings.Join(missing, ", "))
	}
	e := harness.New(b)
	start := time.Now()
	e.DebianImage("benchservers:latest", serverPackages...)
	b.Logf("server image ready in %v", time.Since(start).Round(time.Millisecond))
	environ := e.Environ
	for _, mode := range []struct{ env, label, target string }{
		{"kernel", "kernel DNAT", "≥ 90%"},
		{"userspace", "userspace proxy", ""},
	} {
		b.Run(mode.env, func(b *testing.B) {
			e.Environ = append(slices.Clone(environ), "BERTH_PROXY="+mode.env)
			ports := map[string]int{"redis": freePort(b), "postgres": freePort(b), "nginx": freePort(b)}
			e.WriteFile("compose.yaml", fmt.Sprintf(serversCompose, mode.env, ports["redis"], ports["postgres"], ports["nginx"]))
			e.MustRun("up", "-d", "--wait", "--wait-timeout", "120")
			defer e.MustRun("down", "-t", "10")
			addrs := map[string]string{}
			for svc := range ports {
				ips := strings.Fields(e.MustRun("exec", "-T", svc, "hostname", "-i").Stdout)
				if len(ips) == 0 {
					b.Fatalf("%s: hostname -i printed no address", svc)
				}
				addrs[svc] = ips[0]
			}
			if err := awaitHTTP(net.JoinHostPort(addrs["nginx"], strconv.Itoa(httpPort)), 30*time.Second); err != nil {
				b.Fatalf("nginx: %v", err)
			}
			if p := tools["pgbench"]; p != "" {
				out, err := runTool(context.Background(), p, "-i", "-q", "-s", "5", "-h", addrs["postgres"], "-p", strconv.Itoa(pgPort), "-U", "postgres", "postgres")
				if err != nil {
					b.Fatalf("pgbench -i: %v\n%s", err, out)
				}
			}
			for _, l := range loads {
				if tools[l.tool] == "" {
					continue
				}
				svc, target := serviceOf(l.tool)
				paths := [2]hostPort{{addrs[svc], target}, {"127.0.0.1", ports[svc]}} // direct, published
				measureLoad(b, l, tools[l.tool], paths, mode.label, mode.target)
			}
		})
	}
	b.ReportMetric(0, "ns/op")
}

type hostPort struct {
	host string
	port int
}

// measureLoad runs l serverRuns times over each path, the two in turn, and
// records the medians, and the median of the runs' ratios with their
// range: each run's two figures are measured back to back, so that a
// change in the machine's other load weighs on both.
func measureLoad(b *testing.B, l load, tool string, paths [2]hostPort, label, target string) {
	var got [2][]float64
	pathName := [2]string{"direct", "published"}
	what := l.name + ": published (" + label + ")"
	for r := range serverRuns {
		for _, k := range order(r) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			v, err := l.run(ctx, tool, paths[k].host, paths[k].port)
			cancel()
			if err != nil {
				b.Logf("%s over the %s path: %v", l.name, pathName[k], err)
				note("%s (%s): the %s path failed: %v", l.name, label, pathName[k], firstLine(err.Error()))
				record(row{sec: secServers, what: what, berth: "failed", base: "—", source: "see note", ratio: "—"})
				return
			}
			got[k] = append(got[k], v)
		}
	}
	ratios := make([]float64, len(got[0]))
	for i := range ratios {
		ratios[i] = got[1][i] / got[0][i]
	}
	ratio := medianF(ratios)
	b.Logf("%s: direct %.0f, published %.0f %s; ratios %.2f", l.name, got[0], got[1], l.unit, ratios)
	r := row{sec: secServers, what: what, runs: len(got[1]),
		berth: fmt.Sprintf("%.0f %s", medianF(got[1]), l.unit), base: fmt.Sprintf("%.0f %s", medianF(got[0]), l.unit),
		source: "container's address, this run",
		ratio:  fmt.Sprintf("%s (%s–%s)", percent(ratio), percent(slices.Min(ratios)), percent(slices.Max(ratios))),
		target: target}
	if target != "" {
		r.met = yesNo(ratio >= 0.9)
	}
	record(r)
	note("real servers: a ratio is the median of the runs' published/direct ratios (the two paths of a run back to back), with their range")
}

// serviceOf names the service a tool loads, and its port in the container.
func serviceOf(tool string) (string, int) {
	switch tool {
	case "redis-benchmark":
		return "redis", redisPort
	case "pgbench":
		return "postgres", pgPort
	default:
		return "nginx", httpPort
	}
}

// findTool looks for a client on PATH; pgbench also where Debian's server
// packages keep it and where scripts/deps.sh --bench unpacks it.
func findTool(name string) (string, error) {
	var dirs []string
	if name == "pgbench" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		for _, pattern := range []string{"/usr/lib/postgresql/*/bin", filepath.Join(cache, "berth/bench/postgresql/usr/lib/postgresql/*/bin")} {
			m, _ := filepath.Glob(pattern)
			dirs = append(dirs, m...)
		}
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// runTool runs a client and returns its output, both streams.
func runTool(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(tool), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// redisBench runs n SETs and n GETs, pipeline requests in flight per
// client, and returns the mean of their requests per second.
func redisBench(ctx context.Context, tool, host string, port, pipeline, n int) (float64, error) {
	out, err := runTool(ctx, tool, "-h", host, "-p", strconv.Itoa(port), "-c", "50", "-t", "set,get", "--csv",
		"-P", strconv.Itoa(pipeline), "-n", strconv.Itoa(n))
	if err != nil {
		return 0, err
	}
	var sum float64
	k := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) < 2 || (f[0] != `"SET"` && f[0] != `"GET"`) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
		if err != nil {
			return 0, fmt.Errorf("redis-benchmark: %q: %v", sc.Text(), err)
		}
		sum += v
		k++
	}
	if k != 2 {
		return 0, fmt.Errorf("redis-benchmark printed no SET and GET figures:\n%s", out)
	}
	return sum / 2, nil
}

// firstFloat returns the number the first group of pattern matches in out.
func firstFloat(out, pattern string) (float64, error) {
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no %q in:\n%s", pattern, out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// awaitHTTP retries a GET of / on addr until it answers 200 or timeout
// passes.
func awaitHTTP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := getOnce(addr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, " 200 ") {
		return fmt.Errorf("GET /: %q", strings.TrimSpace(line))
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

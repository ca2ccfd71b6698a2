package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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
//
// The machine is small and shared: client and server already fill its two
// cores, and other work takes a share of them that changes from one second
// to the next, by far more than what publishing costs. A run's throughput
// is mostly the share it got. So the runs are short and many, in blocks of
// four, direct, published, published, direct, whose ratio is that of their
// sums (a share drifting steadily during a block weighs on both paths
// alike), and the figure is the median block; a first pair of runs, not
// counted, warms the server (caches, the backends' first queries). Each run
// also counts the CPU time of the client, the server's cgroup and the
// supervisor (the userspace proxy) per operation: that does not depend on
// the share, and is the cost the throughput would show on an idle machine.

// serverPackages are the servers' Debian packages, one image for the three.
var serverPackages = []string{"redis-server", "postgresql", "nginx-light"}

// serverBlocks is how many blocks of four runs (direct, published,
// published, direct) each load makes after its warm-up pair: 30 runs of
// loadSeconds, the 30 seconds that 5 runs of 3 seconds over each path took.
const serverBlocks = 7

// loadSeconds is about how long one run of a load lasts.
const loadSeconds = 1

// The servers' ports in their containers.
const (
	redisPort = 6379
	pgPort    = 5432
	httpPort  = 80
)

// serversCompose is the stack: redis without persistence, a PostgreSQL
// cluster made at start without fsync (the loads measure the network path,
// not the disk) nor autovacuum (which would wake during some runs and not
// others), nginx without its access log. No health checks: each would exec
// a process in a container during the runs, and charge the server with its
// CPU time; the benchmark waits for the servers itself.
const serversCompose = `name: benchservers-%[1]s
services:
  redis:
    image: benchservers
    command: ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
    ports: ["127.0.0.1:%[2]d:6379"]
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
        exec $$as_postgres $$bin/postgres -D $$d -c listen_addresses='*' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c autovacuum=off
    stop_signal: SIGINT
    stop_grace_period: 10s
    ports: ["127.0.0.1:%[3]d:5432"]
  nginx:
    image: benchservers
    command: ["sh", "-c", "sed -i 's|access_log .*|access_log off;|' /etc/nginx/nginx.conf && exec nginx -g 'daemon off;'"]
    ports: ["127.0.0.1:%[4]d:80"]
`

// load is one client workload; run measures it against host:port.
type load struct {
	name string // the row's name
	unit string
	tool string // the program it needs
	run  func(ctx context.Context, tool, host string, port int) (result, error)
}

// result is one run of a load.
type result struct {
	rate float64       // throughput, higher is better
	ops  float64       // operations done
	cpu  time.Duration // the client's CPU time, user and system
}

func serverLoads() []load {
	return []load{
		redisLoad("redis-benchmark SET+GET, 50 clients", 1),
		redisLoad("redis-benchmark SET+GET -P 16, 50 clients", 16),
		{"pgbench -c 4 -j 2, scale 5 (TPC-B)", "tps", "pgbench", func(ctx context.Context, tool, host string, port int) (result, error) {
			out, cpu, err := runTool(ctx, tool, "-h", host, "-p", strconv.Itoa(port), "-U", "postgres", "-n", "-c", "4", "-j", "2",
				"-T", strconv.Itoa(loadSeconds), "postgres")
			if err != nil {
				return result{}, err
			}
			r := result{cpu: cpu}
			if r.rate, err = firstFloat(out, `(?m)^tps = ([0-9.]+) \(without initial connection time\)`); err != nil {
				return result{}, err
			}
			r.ops, err = firstFloat(out, `(?m)^number of transactions actually processed: ([0-9]+)`)
			return r, err
		}},
		{"wrk -t 2 -c 32 → nginx, 615-byte page", "req/s", "wrk", func(ctx context.Context, tool, host string, port int) (result, error) {
			out, cpu, err := runTool(ctx, tool, "-t", "2", "-c", "32", "-d", fmt.Sprintf("%ds", loadSeconds),
				fmt.Sprintf("http://%s/", net.JoinHostPort(host, strconv.Itoa(port))))
			if err != nil {
				return result{}, err
			}
			if n, _ := firstFloat(out, `(?m)Non-2xx or 3xx responses: ([0-9]+)`); n > 0 {
				return result{}, fmt.Errorf("wrk: %v answers were not 2xx or 3xx:\n%s", n, out)
			}
			r := result{cpu: cpu}
			if r.rate, err = firstFloat(out, `(?m)^Requests/sec:\s+([0-9.]+)`); err != nil {
				return result{}, err
			}
			r.ops, err = firstFloat(out, `(?m)^\s*([0-9]+) requests in `)
			return r, err
		}},
	}
}

// redisLoad is redis-benchmark's SET and GET with pipeline requests in
// flight per client. redis-benchmark has no duration flag: a first short
// run sizes the others to last about loadSeconds on this machine.
func redisLoad(name string, pipeline int) load {
	n := 0
	return load{name, "req/s", "redis-benchmark", func(ctx context.Context, tool, host string, port int) (result, error) {
		if n == 0 {
			r, err := redisBench(ctx, tool, host, port, pipeline, 2000*pipeline)
			if err != nil {
				return result{}, err
			}
			// Two tests, SET and GET, each half of the time.
			n = int(min(max(r.rate*loadSeconds/2, 2000), 5e6))
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
	// kernel-nft is the kernel path without its BPF fast path, which
	// takes the host's own connections (these clients') off NAT.
	for _, mode := range []struct {
		name   string
		env    []string
		label  string
		target string
	}{
		{"kernel", []string{"BERTH_PROXY=kernel"}, "kernel, BPF fast path", "≥ 90%"},
		{"kernel-nft", []string{"BERTH_PROXY=kernel", "BERTH_PORTS_BPF=0"}, "kernel DNAT only", ""},
		{"userspace", []string{"BERTH_PROXY=userspace"}, "userspace proxy", ""},
	} {
		b.Run(mode.name, func(b *testing.B) {
			e.Environ = append(slices.Clone(environ), mode.env...)
			ports := map[string]int{"redis": freePort(b), "postgres": freePort(b), "nginx": freePort(b)}
			e.WriteFile("compose.yaml", fmt.Sprintf(serversCompose, mode.name, ports["redis"], ports["postgres"], ports["nginx"]))
			e.MustRun("up", "-d", "--wait", "--wait-timeout", "120") // running: the servers are awaited below
			defer e.MustRun("down", "-t", "10")
			addrs := map[string]string{}
			for svc := range ports {
				addrs[svc] = e.ContainerIP(svc, 1)
			}
			if err := awaitHTTP(net.JoinHostPort(addrs["nginx"], strconv.Itoa(httpPort)), 30*time.Second); err != nil {
				b.Fatalf("nginx: %v", err)
			}
			if err := awaitRedis(net.JoinHostPort(addrs["redis"], strconv.Itoa(redisPort)), 30*time.Second); err != nil {
				b.Fatalf("redis: %v", err)
			}
			if p := tools["pgbench"]; p != "" {
				// Until PostgreSQL has made its cluster and listens.
				deadline := time.Now().Add(2 * time.Minute)
				for {
					out, _, err := runTool(context.Background(), p, "-i", "-q", "-s", "5", "-h", addrs["postgres"], "-p", strconv.Itoa(pgPort), "-U", "postgres", "postgres")
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("pgbench -i: %v\n%s", err, out)
					}
					time.Sleep(500 * time.Millisecond)
				}
			}
			supervisor, err := supervisorCPU("benchservers-" + mode.name)
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range loads {
				if tools[l.tool] == "" {
					continue
				}
				svc, target := serviceOf(l.tool)
				container, err := containerCPU(e, svc)
				if err != nil {
					b.Fatal(err)
				}
				server := func() (time.Duration, error) {
					c, err := container()
					if err != nil {
						return 0, err
					}
					s, err := supervisor()
					return c + s, err
				}
				paths := [2]hostPort{{addrs[svc], target}, {"127.0.0.1", ports[svc]}} // direct, published
				measureLoad(b, l, tools[l.tool], paths, server, mode.label, mode.target)
			}
		})
	}
	b.ReportMetric(0, "ns/op")
}

type hostPort struct {
	host string
	port int
}

// measureLoad runs l over the two paths, a warm-up pair and then
// serverBlocks blocks of four runs (direct, published, published, direct),
// and records for each path the median run, and the median of the blocks'
// published/direct ratios with their range, of throughput and of CPU time
// per operation (the client's, and server's: the server's container and
// the supervisor).
func measureLoad(b *testing.B, l load, tool string, paths [2]hostPort, server func() (time.Duration, error), label, target string) {
	pathName := [2]string{"direct", "published"}
	what := l.name + ": published (" + label + ")"
	cpuWhat := l.name + ": CPU per operation, published (" + label + ")"
	// A block's sums over its two runs of each path.
	type block struct {
		rate, ops [2]float64
		cpu       [2]time.Duration
	}
	var blocks []block
	var rates, perOp [2][]float64 // each counted run's figures, for the medians
	for i := -1; i < serverBlocks; i++ {
		seq := []int{0, 1, 1, 0}
		if i < 0 {
			seq = []int{0, 1} // the warm-up, not counted
		}
		var bl block
		for _, k := range seq {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			s0, err := server()
			var res result
			if err == nil {
				res, err = l.run(ctx, tool, paths[k].host, paths[k].port)
			}
			var s1 time.Duration
			if err == nil {
				s1, err = server()
			}
			cancel()
			if err == nil && (res.ops <= 0 || res.rate <= 0) {
				err = fmt.Errorf("%s did nothing: %.0f operations, %.0f %s", l.tool, res.ops, res.rate, l.unit)
			}
			if err != nil {
				b.Logf("%s over the %s path: %v", l.name, pathName[k], err)
				note("%s (%s): the %s path failed: %v", l.name, label, pathName[k], firstLine(err.Error()))
				record(row{sec: secServers, what: what, berth: "failed", base: "—", source: "see note", ratio: "—"})
				return
			}
			cpu := res.cpu + s1 - s0
			bl.rate[k] += res.rate
			bl.ops[k] += res.ops
			bl.cpu[k] += cpu
			if i >= 0 {
				rates[k] = append(rates[k], res.rate)
				perOp[k] = append(perOp[k], micros(cpu)/res.ops)
			}
		}
		if i >= 0 {
			blocks = append(blocks, bl)
		}
	}
	rateRatios := make([]float64, len(blocks))
	cpuRatios := make([]float64, len(blocks))
	for i, bl := range blocks {
		rateRatios[i] = bl.rate[1] / bl.rate[0]
		cpuRatios[i] = (float64(bl.cpu[1]) / bl.ops[1]) / (float64(bl.cpu[0]) / bl.ops[0])
	}
	b.Logf("%s: direct %.0f, published %.0f %s; blocks' ratios %.2f", l.name, rates[0], rates[1], l.unit, rateRatios)
	b.Logf("%s: CPU per operation direct %.1f, published %.1f µs; blocks' ratios %.2f", l.name, perOp[0], perOp[1], cpuRatios)
	ratio := medianF(rateRatios)
	r := row{sec: secServers, what: what, runs: len(rates[1]),
		berth: fmt.Sprintf("%.0f %s", medianF(rates[1]), l.unit), base: fmt.Sprintf("%.0f %s", medianF(rates[0]), l.unit),
		source: "container's address, this run", ratio: ratioRange(rateRatios), target: target}
	if target != "" {
		r.met = yesNo(ratio >= 0.9)
	}
	record(r)
	record(row{sec: secServers, what: cpuWhat, runs: len(perOp[1]),
		berth: fmt.Sprintf("%.1f µs", medianF(perOp[1])), base: fmt.Sprintf("%.1f µs", medianF(perOp[0])),
		source: "container's address, this run", ratio: ratioRange(cpuRatios)})
	note("real servers: each path runs %d times for %d s, in blocks of four runs (direct, published, published, direct) after a warm-up pair; "+
		"a ratio is the median of the blocks' ratios of their sums, with their range", 2*serverBlocks, loadSeconds)
	note("real servers: CPU per operation is the client's CPU time, the server's container's and the supervisor's (the userspace proxy) " +
		"over the operations done; it does not depend on the share of the CPUs other work leaves, as throughput does")
}

// ratioRange is the median of ratios with their range.
func ratioRange(ratios []float64) string {
	return fmt.Sprintf("%s (%s–%s)", percent(medianF(ratios)), percent(slices.Min(ratios)), percent(slices.Max(ratios)))
}

// containerCPU returns a reader of the CPU time used so far by the
// container of svc: its cgroup's, which holds every process of the server
// and the kernel's work done while they run, found from the host PID that
// `berth top` shows. cgroup v1's cpuacct hierarchy, else v2's cpu.stat.
func containerCPU(e *harness.Env, svc string) (func() (time.Duration, error), error) {
	pid := ""
	var header []string
	for _, line := range strings.Split(e.MustRun("top", svc).Stdout, "\n") {
		f := strings.Fields(line)
		if header == nil && slices.Contains(f, "PID") {
			header = f
		} else if i := slices.Index(header, "PID"); header != nil && i >= 0 && i < len(f) {
			pid = f[i]
			break
		}
	}
	if pid == "" {
		return nil, fmt.Errorf("berth top %s showed no process", svc)
	}
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil, err
	}
	var v2 string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2 = filepath.Join("/sys/fs/cgroup", f[2], "cpu.stat")
			continue
		}
		if !slices.Contains(strings.Split(f[1], ","), "cpuacct") {
			continue
		}
		for _, dir := range []string{f[1], "cpuacct"} {
			p := filepath.Join("/sys/fs/cgroup", dir, f[2], "cpuacct.usage")
			if _, err := os.Stat(p); err == nil {
				return func() (time.Duration, error) {
					b, err := os.ReadFile(p)
					if err != nil {
						return 0, err
					}
					ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
					return time.Duration(ns), err
				}, nil
			}
		}
	}
	if v2 == "" {
		return nil, fmt.Errorf("no CPU accounting in the cgroups of %s's process %s:\n%s", svc, pid, b)
	}
	return func() (time.Duration, error) {
		b, err := os.ReadFile(v2)
		if err != nil {
			return 0, err
		}
		us, err := firstFloat(string(b), `(?m)^usage_usec ([0-9]+)`)
		return time.Duration(us) * time.Microsecond, err
	}, nil
}

// supervisorCPU returns a reader of the CPU time used so far by the
// supervisor of project: the process in this network namespace (the
// sandbox's) whose command line is "… __supervise <project>". The
// userspace proxy runs in it.
func supervisorCPU(project string) (func() (time.Duration, error), error) {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return nil, err
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		b, err := os.ReadFile(p + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		i := slices.Index(args, "__supervise")
		if i < 0 || i+1 >= len(args) || args[i+1] != project {
			continue
		}
		if ns, _ := os.Readlink(p + "/ns/net"); ns != self {
			continue
		}
		stat := p + "/stat"
		return func() (time.Duration, error) {
			b, err := os.ReadFile(stat)
			if err != nil {
				return 0, err
			}
			// utime and stime, the 14th and 15th fields, in clock ticks
			// (100 a second); the command, the 2nd, may hold spaces but
			// ends at the last ')'.
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			if len(f) < 13 {
				return 0, fmt.Errorf("%s: %q", stat, b)
			}
			u, err1 := strconv.ParseInt(f[11], 10, 64)
			s, err2 := strconv.ParseInt(f[12], 10, 64)
			return time.Duration(u+s) * 10 * time.Millisecond, errors.Join(err1, err2)
		}, nil
	}
	return nil, fmt.Errorf("no supervisor of %s in this network namespace", project)
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

// runTool runs a client and returns its output, both streams, and its CPU
// time, user and system, which holds the kernel's work done while it runs
// (sending to the server, and the server's side of the bridge).
func runTool(ctx context.Context, tool string, args ...string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, tool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), 0, fmt.Errorf("%s %s: %v: %s", filepath.Base(tool), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// redisBench runs n SETs and n GETs, pipeline requests in flight per
// client; its rate is the mean of their requests per second.
func redisBench(ctx context.Context, tool, host string, port, pipeline, n int) (result, error) {
	out, cpu, err := runTool(ctx, tool, "-h", host, "-p", strconv.Itoa(port), "-c", "50", "-t", "set,get", "--csv",
		"-P", strconv.Itoa(pipeline), "-n", strconv.Itoa(n))
	if err != nil {
		return result{}, err
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
			return result{}, fmt.Errorf("redis-benchmark: %q: %v", sc.Text(), err)
		}
		sum += v
		k++
	}
	if k != 2 {
		return result{}, fmt.Errorf("redis-benchmark printed no SET and GET figures:\n%s", out)
	}
	return result{rate: sum / 2, ops: float64(2 * n), cpu: cpu}, nil
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
	return await(addr, timeout, "GET / HTTP/1.0\r\nHost: bench\r\n\r\n", func(line string) bool { return strings.Contains(line, " 200 ") })
}

// awaitRedis retries a PING to the redis at addr until it answers PONG or
// timeout passes.
func awaitRedis(addr string, timeout time.Duration) error {
	return await(addr, timeout, "PING\r\n", func(line string) bool { return strings.TrimSpace(line) == "+PONG" })
}

// await sends request to addr on a new connection until the first line
// of the answer is ok or timeout passes.
func await(addr string, timeout time.Duration, request string, ok func(line string) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		err := askOnce(addr, request, ok)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func askOnce(addr, request string, ok func(line string) bool) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, request)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !ok(line) {
		return fmt.Errorf("%q: answered %q", strings.TrimSpace(request), strings.TrimSpace(line))
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Figures of /work/shared/PEERS.md (docker compose v5.5 on this machine
// kind, busybox services, medians of 10 runs), shown when no Docker engine
// runs here.
const (
	peersSource     = "docker compose v5.5, PEERS.md figure"
	peersUp3        = 950 * time.Millisecond
	peersUp10       = 3160 * time.Millisecond
	peersUpScaled20 = 5750 * time.Millisecond
	peersDown10     = 1010 * time.Millisecond
	peersDockerRun  = 309 * time.Millisecond
	// dockerd ~91 MB + containerd ~45 MB + 10 shims of 3.4 MB PSS.
	peersDockerMemory = 175e6
	peersMemorySource = "dockerd+containerd+10 shims, PEERS.md figure"
)

// peer is a docker compose that answers with a running Docker engine.
type peer struct {
	argv    []string // "docker", "compose" or "docker-compose"
	version string
}

func (p *peer) label() string {
	return fmt.Sprintf("%s %s, this run", strings.Join(p.argv, " "), p.version)
}

var peerOnce struct {
	sync.Once
	p *peer
}

// dockerPeer returns the docker compose to measure against, or nil (with a
// note saying why) when `docker compose version` fails, no engine answers
// `docker info`, or the engine has no busybox image (the bench pulls
// nothing).
func dockerPeer() *peer {
	peerOnce.Do(func() { peerOnce.p = findPeer() })
	return peerOnce.p
}

func findPeer() *peer {
	var p *peer
	for _, argv := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		out, err := command(20*time.Second, "", argv[0], append(argv[1:], "version", "--short")...)
		if err == nil {
			p = &peer{argv: argv, version: strings.TrimSpace(out)}
			break
		}
	}
	if p == nil {
		note("`docker compose version` fails here: the docker compose column shows PEERS.md figures, not measured in this run")
		return nil
	}
	if _, err := command(20*time.Second, "", "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		note("%s %s is installed but no Docker engine answers `docker info`: the docker compose column shows PEERS.md figures", strings.Join(p.argv, " "), p.version)
		return nil
	}
	if _, err := command(20*time.Second, "", "docker", "image", "inspect", "busybox:latest"); err != nil {
		note("the Docker engine has no busybox:latest image (the bench pulls nothing): the docker compose column shows PEERS.md figures")
		return nil
	}
	note("docker compose figures measured in this run with %s %s", strings.Join(p.argv, " "), p.version)
	return p
}

// compose runs the peer on the compose file in dir as project name and
// returns how long it took.
func (p *peer) compose(dir, name string, args ...string) (time.Duration, error) {
	argv := append(append(slices.Clone(p.argv[1:]), "-p", name, "-f", filepath.Join(dir, "compose.yaml")), args...)
	start := time.Now()
	_, err := command(3*time.Minute, dir, p.argv[0], argv...)
	return time.Since(start), err
}

// down removes the peer's project, whatever state it is in.
func (p *peer) down(dir, name string) {
	_, _ = p.compose(dir, name, "down", "-t", "1", "--remove-orphans")
}

// writeCompose writes a compose file into a new temporary directory for the
// peer and returns the directory.
func writeCompose(content string) (string, error) {
	dir, err := os.MkdirTemp("", "berth-bench-peer-")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(content), 0o644)
}

func command(timeout time.Duration, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// dockerMemory sums RSS and PSS of dockerd, containerd and the containerd
// shims, as PEERS.md counts Docker's cost of running containers.
func dockerMemory() (rss, pss int64, n int) {
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err != nil {
			continue
		}
		c := strings.TrimSpace(string(comm))
		if c == "dockerd" || c == "containerd" || strings.HasPrefix(c, "containerd-shim") {
			m, err := smapsRollup(pid)
			if err != nil {
				continue
			}
			rss += m.rss
			pss += m.pss
			n++
		}
	}
	return rss, pss, n
}

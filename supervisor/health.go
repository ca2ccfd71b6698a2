package supervisor

import (
	"bytes"
	"context"
	"time"

	"github.com/berthrun/berth/engine/runtime"
	"github.com/berthrun/berth/project/model"
)

// Docker's health check defaults.
const (
	healthInterval = 30 * time.Second
	healthTimeout  = 30 * time.Second
	healthRetries  = 3
	startInterval  = 5 * time.Second
)

// healthConfig fills in docker's defaults; nil means no check.
func healthConfig(h *model.Healthcheck) *model.Healthcheck {
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil
	}
	c := *h
	if c.Interval <= 0 {
		c.Interval = healthInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = healthTimeout
	}
	if c.Retries <= 0 {
		c.Retries = healthRetries
	}
	if c.StartInterval <= 0 {
		c.StartInterval = startInterval
	}
	return &c
}

// healthArgs is the command of a check: CMD runs its arguments, CMD-SHELL
// runs its one string with /bin/sh -c, a bare list is CMD-SHELL joined.
func healthArgs(test []string) []string {
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		if len(test) > 1 {
			return []string{"/bin/sh", "-c", test[1]}
		}
		return nil
	}
	return []string{"/bin/sh", "-c", joinArgs(test)}
}

func joinArgs(a []string) string {
	var b bytes.Buffer
	for i, s := range a {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

func (c *container) initialHealth() string {
	if healthConfig(c.rec.Health) != nil {
		return "starting"
	}
	return ""
}

// probeWait is the time until the next probe. A container still starting
// is probed every start_interval during start_period, as docker does; once
// it has passed a check it is probed every interval, start period or not
// (a probe is a process in the container: the faster pace only while it
// helps). Without a start period, a container that has not yet failed is
// probed every start_interval until its first success when that is
// sooner than interval, so that a dependent on service_healthy does not
// wait a whole interval (30 s by default) for the first probe.
func probeWait(h *model.Healthcheck, inStartPeriod, starting bool, failures int) time.Duration {
	if starting && (inStartPeriod || (h.StartPeriod == 0 && h.StartInterval < h.Interval && failures == 0)) {
		return h.StartInterval
	}
	return h.Interval
}

// startHealth runs the container's health check for as long as the current
// run lasts, at probeWait's pace.
// A failure during start_period does not count; retries failures in a row
// make the container unhealthy, one success makes it healthy.
func (s *Supervisor) startHealth(c *container) {
	h := healthConfig(c.rec.Health)
	if h == nil || c.ctr == nil {
		return
	}
	ctr, exited := c.ctr, c.exited
	args := healthArgs(h.Test)
	if len(args) == 0 {
		return
	}
	started := time.Now()
	go func() {
		failures := 0
		for {
			c.mu.Lock()
			starting := c.rec.State.Health == "starting"
			c.mu.Unlock()
			wait := probeWait(h, time.Since(started) < h.StartPeriod, starting, failures)
			select {
			case <-exited:
				return
			case <-s.ctx.Done():
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(s.ctx, h.Timeout)
			code, err := ctr.Exec(ctx, runtime.ExecSpec{Args: args})
			cancel()
			ok := err == nil && code == 0
			c.mu.Lock()
			if c.ctr != ctr {
				c.mu.Unlock()
				return
			}
			prev := c.rec.State.Health
			switch {
			case ok:
				failures = 0
				c.rec.State.Health = "healthy"
			case time.Since(started) < h.StartPeriod:
				// Failures while the container starts up do not count.
			default:
				failures++
				if failures >= h.Retries {
					c.rec.State.Health = "unhealthy"
				}
			}
			now := c.rec.State.Health
			if now != prev {
				_ = c.save()
			}
			name, svc, id := c.rec.Name, c.rec.Service, c.rec.ID
			c.mu.Unlock()
			if now != prev {
				// Published ports first: their backends follow the record,
				// which `ps` already shows, and the DNS state's write would
				// otherwise hold back taking an unhealthy replica out.
				s.notify()
				if err := s.net.SetHealthy(s.ctx, id, now != "unhealthy"); err != nil {
					s.logf("container %s: dns health: %v", name, err)
				}
				s.emit(Event{Action: "health_status", Container: name, Service: svc, ID: id, Health: now})
			}
		}
	}()
}

package supervisor

import (
	"context"
	"fmt"
	"time"
)

// waitCondition blocks until every replica of dep meets condition.
func (s *Supervisor) waitCondition(ctx context.Context, dep, condition string) error {
	for {
		changed := s.changes()
		ok, err := s.conditionMet(dep, condition)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

func (s *Supervisor) conditionMet(dep, condition string) (bool, error) {
	cs := s.serviceContainers(dep)
	if len(cs) == 0 {
		return false, fmt.Errorf("dependency %q has no container", dep)
	}
	for _, c := range cs {
		r := c.record()
		switch condition {
		case "service_healthy":
			if healthConfig(r.Health) == nil {
				return false, fmt.Errorf("dependency failed to start: container %s has no healthcheck configured", r.Name)
			}
			switch {
			case r.State.Health == "unhealthy":
				return false, fmt.Errorf("dependency failed to start: container %s is unhealthy", r.Name)
			case r.State.Status == StatusExited && r.State.Health != "healthy":
				return false, fmt.Errorf("dependency failed to start: container %s exited (%d)", r.Name, r.State.ExitCode)
			case r.State.Health != "healthy":
				return false, nil
			}
		case "service_completed_successfully":
			switch {
			case r.State.Status != StatusExited:
				return false, nil
			case r.State.ExitCode != 0:
				return false, fmt.Errorf("service %q didn't complete successfully: exit %d", dep, r.State.ExitCode)
			}
		default: // service_started
			if r.State.Status == StatusCreated {
				return false, nil
			}
		}
	}
	return true, nil
}

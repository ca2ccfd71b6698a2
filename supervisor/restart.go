package supervisor

import (
	"time"

	"github.com/berthrun/berth/project/model"
)

// restartPolicy is docker's: no, always, on-failure[:max], unless-stopped.
type restartPolicy struct {
	name string
	max  int // on-failure's limit; 0 is none
}

func parseRestart(s string) (restartPolicy, error) {
	name, max, err := model.ParseRestart(s)
	if err != nil {
		return restartPolicy{name: "no"}, err
	}
	return restartPolicy{name: name, max: max}, nil
}

// shouldRestart applies docker's rules to a container that just exited: a
// container stopped by the user is never restarted; on-failure restarts
// non-zero exits up to its maximum.
func (p restartPolicy) shouldRestart(st State) bool {
	if st.StoppedByUser {
		return false
	}
	switch p.name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		if st.ExitCode == 0 && !st.ExitUnknown {
			return false
		}
		return p.max == 0 || st.RestartCount < p.max
	}
	return false
}

const (
	backoffStart = 100 * time.Millisecond
	backoffMax   = time.Minute
	// backoffReset: a container that ran this long before exiting starts
	// its backoff from the beginning again.
	backoffReset = 10 * time.Second
)

// nextBackoff doubles the delay from 100 ms up to a minute, and starts over
// after a run of 10 s or more, as docker does.
func nextBackoff(prev time.Duration, ran time.Duration) time.Duration {
	if prev == 0 || ran >= backoffReset {
		return backoffStart
	}
	return min(prev*2, backoffMax)
}

package model

import (
	"fmt"
	"strings"
	"time"

	str2duration "github.com/xhit/go-str2duration/v2"
)

// PullDue says whether a service's image is to be pulled before it is
// used, under its pull_policy, as docker compose decides: always pulls;
// never and build do not; missing (the default) and if_not_present pull
// what the store lacks; daily, weekly, every_<duration> and refresh also
// pull when the last pull is older than their period (refresh: any age).
func PullDue(policy string, have bool, lastPulled, now time.Time) (bool, error) {
	switch policy {
	case "always":
		return true, nil
	case "never", "build":
		return false, nil
	case "", "missing", "if_not_present":
		return !have, nil
	}
	every, err := RefreshPeriod(policy)
	if err != nil {
		return false, err
	}
	return !have || now.After(lastPulled.Add(every)), nil
}

// RefreshPeriod is the period of a refreshing pull_policy: daily, weekly,
// every_<duration> (with d and w units, as compose-go reads it), refresh.
func RefreshPeriod(policy string) (time.Duration, error) {
	switch policy {
	case "refresh":
		return 0, nil
	case "daily":
		return 24 * time.Hour, nil
	case "weekly":
		return 7 * 24 * time.Hour, nil
	}
	if d, ok := strings.CutPrefix(policy, "every_"); ok {
		every, err := str2duration.ParseDuration(d)
		if err != nil || every <= 0 {
			return 0, fmt.Errorf("invalid pull_policy %q: %q is not a duration", policy, d)
		}
		return every, nil
	}
	return 0, fmt.Errorf("invalid pull_policy %q", policy)
}

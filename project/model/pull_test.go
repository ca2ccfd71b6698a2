package model

import (
	"testing"
	"time"
)

func TestPullDue(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	hoursAgo := func(h int) time.Time { return now.Add(-time.Duration(h) * time.Hour) }
	cases := []struct {
		policy string
		have   bool
		last   time.Time
		want   bool
	}{
		{"", false, time.Time{}, true},
		{"", true, hoursAgo(1000), false},
		{"missing", true, hoursAgo(1000), false},
		{"if_not_present", false, time.Time{}, true},
		{"always", true, hoursAgo(0), true},
		{"never", false, time.Time{}, false},
		{"build", false, time.Time{}, false},
		{"daily", true, hoursAgo(23), false},
		{"daily", true, hoursAgo(25), true},
		{"daily", false, time.Time{}, true},
		{"weekly", true, hoursAgo(24 * 6), false},
		{"weekly", true, hoursAgo(24*7 + 1), true},
		{"every_12h", true, hoursAgo(11), false},
		{"every_12h", true, hoursAgo(13), true},
		{"every_2d", true, hoursAgo(47), false},
		{"every_1w2d", true, hoursAgo(24 * 8), false},
		{"every_1w2d", true, hoursAgo(24 * 10), true},
		{"refresh", true, hoursAgo(0).Add(-time.Second), true},
	}
	for _, c := range cases {
		got, err := PullDue(c.policy, c.have, c.last, now)
		if err != nil || got != c.want {
			t.Errorf("PullDue(%q, have=%v, %v ago) = %v, %v; want %v", c.policy, c.have, now.Sub(c.last), got, err, c.want)
		}
	}
	for _, bad := range []string{"every_", "every_soon", "hourly"} {
		if _, err := PullDue(bad, true, now, now); err == nil {
			t.Errorf("PullDue(%q) accepted", bad)
		}
	}
}

package cli

import (
	"testing"
	"time"
)

// TestParseTime: --since and --until take what compose takes: RFC 3339,
// dates and times without a zone (local), unix seconds with a fraction, and
// durations back from now.
func TestParseTime(t *testing.T) {
	local := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-03-04T05:06:07Z", time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)},
		{"2026-03-04T05:06:07.5+02:00", time.Date(2026, 3, 4, 3, 6, 7, 500e6, time.UTC)},
		{"2026-03-04T05:06:07", local},
		{"2026-03-04", time.Date(2026, 3, 4, 0, 0, 0, 0, time.Local)},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000.25", time.Unix(1700000000, 250e6)},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	before := time.Now()
	got, err := parseTime("10m")
	if err != nil || got.After(before.Add(-10*time.Minute+time.Second)) || got.Before(before.Add(-10*time.Minute-time.Second)) {
		t.Errorf("parseTime(10m) = %v, %v; want about %v", got, err, before.Add(-10*time.Minute))
	}
	for _, bad := range []string{"yesterday", "10 minutes", "2026-13-01"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
	if got, err := parseTime(""); err != nil || !got.IsZero() {
		t.Errorf("parseTime(\"\") = %v, %v", got, err)
	}
}

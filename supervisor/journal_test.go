package supervisor

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestJournal: events are numbered across reopenings, a torn last line is
// skipped and ended, replay honours the number and the time range, and the
// files stay bounded.
func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j := openJournal(path)
	for i := range 3 {
		j.append(&Event{Time: base.Add(time.Duration(i) * time.Minute), Action: "start", Container: "c"})
	}
	// A crash in the middle of a write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-01-02T03:10:00Z","act`)
	f.Close()

	j = openJournal(path)
	if j.seq != 3 {
		t.Fatalf("reopened at seq %d, want 3", j.seq)
	}
	j.append(&Event{Time: base.Add(10 * time.Minute), Action: "die", Container: "c"})
	var got []uint64
	j.replay(j.seq, base.Add(time.Minute), time.Time{}, func(e Event) { got = append(got, e.Seq) })
	if len(got) != 3 || got[0] != 2 || got[2] != 4 {
		t.Errorf("replay since the second minute = %v, want [2 3 4]", got)
	}
	got = nil
	j.replay(3, time.Time{}, base.Add(90*time.Second), func(e Event) { got = append(got, e.Seq) })
	if len(got) != 2 || got[1] != 2 {
		t.Errorf("replay up to 3 until 1m30s = %v, want [1 2]", got)
	}

	for range 20000 {
		j.append(&Event{Time: base, Action: "health_status", Container: "a-long-container-name-1", Health: "healthy"})
	}
	for _, p := range []string{path, path + ".1"} {
		if fi, err := os.Stat(p); err != nil || fi.Size() > journalMaxSize {
			t.Errorf("%s: %v, size %d over %d", p, err, fi.Size(), journalMaxSize)
		}
	}
	n := 0
	j.replay(j.seq, time.Time{}, time.Time{}, func(Event) { n++ })
	if n == 0 || n >= 20004 {
		t.Errorf("replayed %d events after rotation", n)
	}
	if j2 := openJournal(path); j2.seq != j.seq {
		t.Errorf("reopened after rotation at %d, want %d", j2.seq, j.seq)
	}
}

package logs

import (
	"testing"
	"time"
)

func TestAppendEntry(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 60_000_000, time.FixedZone("x", 3600))
	e := Entry{Time: ts, Stream: "stdout", Line: []byte("hello")}
	partial := Entry{Time: ts, Stream: "stdout", Line: []byte("hel"), Partial: true}
	tests := []struct {
		name string
		e    Entry
		f    Format
		want string
	}{
		{"plain", e, Format{Width: 8}, "web-1    | hello\n"},
		{"width below name", e, Format{Width: 0}, "web-1 | hello\n"},
		{"color", e, Format{Width: 6, Color: "36"}, "\x1b[36mweb-1  | \x1b[0mhello\n"},
		{"bold color", e, Format{Width: 6, Color: "33;1"}, "\x1b[33;1mweb-1  | \x1b[0mhello\n"},
		{"timestamps", e, Format{Width: 6, Timestamps: true}, "web-1  | 2026-01-02T02:04:05.060000000Z hello\n"},
		{"no prefix", e, Format{Width: 6, Color: "36", NoPrefix: true}, "hello\n"},
		{"no prefix timestamps", e, Format{NoPrefix: true, Timestamps: true}, "2026-01-02T02:04:05.060000000Z hello\n"},
		{"partial with prefix", partial, Format{Width: 6}, "web-1  | hel"},
		{"continued", e, Format{Width: 6, Timestamps: true, Continue: true}, "hello\n"},
		{"partial without prefix", partial, Format{NoPrefix: true}, "hel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendEntry(nil, "web-1", tt.e, tt.f)); got != tt.want {
				t.Fatalf("AppendEntry = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrefixer(t *testing.T) {
	e := Entry{Stream: "stdout", Line: []byte("x")}
	p := NewPrefixer(PrefixerOptions{}, "db-1", "web-1")
	steps := []struct{ name, want string }{
		{"db-1", "db-1   | x\n"},
		{"web-1", "web-1  | x\n"},
		{"worker-10", "worker-10  | x\n"}, // a new, longer name widens what follows
		{"db-1", "db-1       | x\n"},
	}
	for _, s := range steps {
		if got := string(p.Format(s.name, e)); got != s.want {
			t.Errorf("Format(%q) = %q, want %q", s.name, got, s.want)
		}
	}

	c := NewPrefixer(PrefixerOptions{Color: true})
	var got []string
	for _, n := range []string{"a", "b", "a", "c", "d", "e", "f"} {
		got = append(got, string(c.Format(n, e)))
	}
	want := []string{
		"\x1b[36ma  | \x1b[0mx\n",
		"\x1b[33mb  | \x1b[0mx\n",
		"\x1b[36ma  | \x1b[0mx\n", // same name, same color
		"\x1b[32mc  | \x1b[0mx\n",
		"\x1b[35md  | \x1b[0mx\n",
		"\x1b[34me  | \x1b[0mx\n",
		"\x1b[36;1mf  | \x1b[0mx\n",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("colored line %d = %q, want %q", i, got[i], want[i])
		}
	}
	if PaletteColor(10) != PaletteColor(0) || PaletteColor(-1) != PaletteColor(9) {
		t.Errorf("PaletteColor does not cycle")
	}
	if w := PrefixWidth([]string{"a", "abcd"}); w != 5 {
		t.Errorf("PrefixWidth = %d, want 5", w)
	}
}

// TestPrefixerJoinsPartials: a line split into partial entries prints as
// one line with one prefix; another container's entry in between ends it.
func TestPrefixerJoinsPartials(t *testing.T) {
	part := func(s string) Entry { return Entry{Line: []byte(s), Partial: true} }
	whole := func(s string) Entry { return Entry{Line: []byte(s)} }
	steps := []struct {
		name string
		e    Entry
	}{
		{"a", part("ab")}, {"a", part("cd")}, {"a", whole("ef")},
		{"a", part("gh")}, {"b", whole("x")}, {"a", whole("ij")},
		{"b", part("y")},
	}
	for _, noPrefix := range []bool{false, true} {
		p := NewPrefixer(PrefixerOptions{NoPrefix: noPrefix}, "a", "b")
		var out []byte
		for _, s := range steps {
			out = append(out, p.Format(s.name, s.e)...)
		}
		out = append(out, p.Flush()...)
		want := "a  | abcdef\na  | gh\nb  | x\na  | ij\nb  | y\n"
		if noPrefix {
			want = "abcdef\ngh\nx\nij\ny\n"
		}
		if string(out) != want {
			t.Errorf("noPrefix %v: %q, want %q", noPrefix, out, want)
		}
	}
}

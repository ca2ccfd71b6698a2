package logs

import (
	"strings"
	"sync"
)

// TimestampFormat is how -t prints an entry's time: RFC 3339 in UTC with
// nanoseconds always nine digits wide, as docker logs -t, so that columns
// line up.
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// palette is the order in which docker compose colors container prefixes:
// cyan, yellow, green, magenta, blue, then the same in bold (ANSI SGR).
var palette = [...]string{"36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1"}

// PaletteColor returns the ANSI SGR parameters of the i-th prefix color,
// cycling over compose's palette.
func PaletteColor(i int) string {
	n := len(palette)
	return palette[((i%n)+n)%n]
}

// PrefixWidth returns the column width compose pads names to: the longest
// name plus one.
func PrefixWidth(names []string) int {
	w := 0
	for _, n := range names {
		w = max(w, len(n))
	}
	return w + 1
}

// Format says how AppendEntry prints an entry.
type Format struct {
	// Width pads the name to this many columns (see PrefixWidth).
	Width int
	// Color holds the ANSI SGR parameters of the prefix ("36"); empty
	// prints no escape sequences.
	Color string
	// NoPrefix leaves out the name (--no-log-prefix).
	NoPrefix bool
	// Timestamps prints the entry's time after the prefix (-t).
	Timestamps bool
	// Continue prints e as the rest of the line of a partial entry printed
	// just before: no prefix, no timestamp.
	Continue bool
}

// AppendEntry appends e as docker compose prints it for the container
// name, "web-1  | hello\n" (the name padded to Width, then " | "), to dst
// and returns the result. A partial entry gets no newline: the entries
// after it (printed with Continue) complete its line, so that a line that
// was split for the log comes out whole.
func AppendEntry(dst []byte, name string, e Entry, f Format) []byte {
	if f.Continue {
		dst = append(dst, e.Line...)
		if !e.Partial {
			dst = append(dst, '\n')
		}
		return dst
	}
	if !f.NoPrefix {
		if f.Color != "" {
			dst = append(dst, "\x1b["...)
			dst = append(dst, f.Color...)
			dst = append(dst, 'm')
		}
		dst = append(dst, name...)
		if pad := f.Width - len(name); pad > 0 {
			dst = append(dst, strings.Repeat(" ", pad)...)
		}
		dst = append(dst, " | "...)
		if f.Color != "" {
			dst = append(dst, "\x1b[0m"...)
		}
	}
	if f.Timestamps {
		dst = e.Time.UTC().AppendFormat(dst, TimestampFormat)
		dst = append(dst, ' ')
	}
	dst = append(dst, e.Line...)
	if !e.Partial {
		dst = append(dst, '\n')
	}
	return dst
}

// Prefixer prints the entries of several containers in one stream, as
// `docker compose logs` and attached `up` do: names padded to the longest
// one seen, each with its own color when Color is set. It is safe for
// concurrent use.
type Prefixer struct {
	color      bool
	noPrefix   bool
	timestamps bool

	mu     sync.Mutex
	width  int
	colors map[string]string
	open   string // the container whose line a partial entry left unfinished
	isOpen bool
}

// PrefixerOptions are the output flags of `logs` and `up`.
type PrefixerOptions struct {
	Color      bool // color the prefixes (the CLI decides: --no-color, a terminal)
	NoPrefix   bool // --no-log-prefix
	Timestamps bool // -t, --timestamps
}

// NewPrefixer returns a Prefixer that knows names already, so that the
// first lines are padded to the final width.
func NewPrefixer(opts PrefixerOptions, names ...string) *Prefixer {
	p := &Prefixer{
		color:      opts.Color,
		noPrefix:   opts.NoPrefix,
		timestamps: opts.Timestamps,
		colors:     map[string]string{},
	}
	for _, n := range names {
		p.add(n)
	}
	return p
}

// add registers name, giving it the next color. p.mu is held or p is new.
func (p *Prefixer) add(name string) {
	if _, ok := p.colors[name]; ok {
		return
	}
	c := ""
	if p.color {
		c = PaletteColor(len(p.colors))
	}
	p.colors[name] = c
	p.width = max(p.width, len(name)+1)
}

// Format returns e printed for the container name, registering the name
// if it is new (a replica started later widens the following prefixes).
// The pieces of a line split into partial entries are printed as one line
// with one prefix; an entry of another container in between ends the
// unfinished line first. Callers that write from several goroutines must
// call Format and write its result under one lock, so that the output
// keeps the order in which Format saw the entries.
func (p *Prefixer) Format(name string, e Entry) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.add(name)
	f := Format{Width: p.width, Color: p.colors[name], NoPrefix: p.noPrefix, Timestamps: p.timestamps}
	var dst []byte
	if p.isOpen {
		if p.open == name {
			f.Continue = true
		} else {
			dst = append(dst, '\n')
		}
	}
	p.open, p.isOpen = name, e.Partial
	return AppendEntry(dst, name, e, f)
}

// Flush returns what ends the output: a newline after a line left
// unfinished by a partial entry, else nothing.
func (p *Prefixer) Flush() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isOpen {
		return nil
	}
	p.isOpen = false
	return []byte{'\n'}
}

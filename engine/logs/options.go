package logs

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/go-units"
)

// Defaults applied when a compose file sets no logging options. Docker's
// json-file driver keeps one file of unlimited size; berth caps logs by
// default (3 files of 10 MB, 30 MB per container at most) because a
// supervisor that fills the disk takes the whole host down with it.
const (
	DefaultMaxSize = 10 * 1000 * 1000
	DefaultMaxFile = 3
)

// ErrInvalidOption is wrapped by every error of ParseOptions.
var ErrInvalidOption = errors.New("invalid logging option")

// Options bound the size of a container's log. A zero field takes its
// default (DefaultMaxSize, DefaultMaxFile); there is no way to ask for
// unbounded logs.
type Options struct {
	// MaxSize is the size in bytes above which the log file is rotated.
	// A single entry larger than MaxSize still goes whole into one file.
	MaxSize int64
	// MaxFile is the number of files kept, the live one included:
	// <path>, <path>.1, ..., <path>.<MaxFile-1>, oldest last.
	MaxFile int
}

func (o Options) withDefaults() Options {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxFile <= 0 {
		o.MaxFile = DefaultMaxFile
	}
	return o
}

// ignoredOptions are accepted for compatibility with compose files written
// for Docker's json-file driver and have no effect in berth: labels, env
// and tag would add attributes to each entry, compress would gzip rotated
// files, mode and max-buffer-size tune Docker's delivery queue.
var ignoredOptions = map[string]bool{
	"compress":        true,
	"env":             true,
	"env-regex":       true,
	"labels":          true,
	"labels-regex":    true,
	"max-buffer-size": true,
	"mode":            true,
	"tag":             true,
}

// ParseOptions reads compose's `logging.options` for the json-file driver.
// max-size is a positive size as Docker writes it ("100k", "10m", "1g",
// "1.5MB", "2048"); units are decimal as in Docker's json-file driver
// (10m = 10,000,000 bytes). max-file is an integer of at least 1. Options
// that Docker's json-file driver knows and berth does not implement are
// accepted and ignored (see ignoredOptions); any other key is an error.
// Each option that is not set keeps its default.
func ParseOptions(m map[string]string) (Options, error) {
	o := Options{MaxSize: DefaultMaxSize, MaxFile: DefaultMaxFile}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first error reported does not depend on map order
	for _, k := range keys {
		v := m[k]
		switch k {
		case "max-size":
			// Decimal units ("kib" is still 1000), as docker reads it.
			n, err := units.FromHumanSize(strings.TrimSpace(v))
			if err != nil {
				return Options{}, fmt.Errorf("%w: max-size %q: %v", ErrInvalidOption, v, err)
			}
			if n <= 0 {
				return Options{}, fmt.Errorf("%w: max-size %q: must be a positive size", ErrInvalidOption, v)
			}
			o.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return Options{}, fmt.Errorf("%w: max-file %q: not an integer", ErrInvalidOption, v)
			}
			if n < 1 {
				return Options{}, fmt.Errorf("%w: max-file %q: must be at least 1", ErrInvalidOption, v)
			}
			o.MaxFile = n
		case "compress":
			if _, err := strconv.ParseBool(v); err != nil {
				return Options{}, fmt.Errorf("%w: compress %q: not a boolean", ErrInvalidOption, v)
			}
		default:
			if !ignoredOptions[k] {
				return Options{}, fmt.Errorf("%w: unknown option %q for the json-file log driver", ErrInvalidOption, k)
			}
		}
	}
	return o, nil
}

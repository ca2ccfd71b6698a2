package logs

import (
	"errors"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    Options
		wantErr string // substring; empty means success
	}{
		{name: "defaults", in: nil, want: Options{MaxSize: 10_000_000, MaxFile: 3}},
		{name: "kilo", in: map[string]string{"max-size": "100k"}, want: Options{MaxSize: 100_000, MaxFile: 3}},
		{name: "mega", in: map[string]string{"max-size": "10m", "max-file": "5"}, want: Options{MaxSize: 10_000_000, MaxFile: 5}},
		{name: "giga upper", in: map[string]string{"max-size": "1G"}, want: Options{MaxSize: 1_000_000_000, MaxFile: 3}},
		{name: "fraction with unit", in: map[string]string{"max-size": "1.5MB"}, want: Options{MaxSize: 1_500_000, MaxFile: 3}},
		{name: "space and ib", in: map[string]string{"max-size": "2 kib"}, want: Options{MaxSize: 2000, MaxFile: 3}},
		{name: "bytes", in: map[string]string{"max-size": "2048"}, want: Options{MaxSize: 2048, MaxFile: 3}},
		{name: "exponent, as docker", in: map[string]string{"max-size": "1e6"}, want: Options{MaxSize: 1_000_000, MaxFile: 3}},
		{name: "bytes suffix", in: map[string]string{"max-size": "512b"}, want: Options{MaxSize: 512, MaxFile: 3}},
		{name: "one file", in: map[string]string{"max-file": "1"}, want: Options{MaxSize: 10_000_000, MaxFile: 1}},
		{name: "ignored docker keys", in: map[string]string{"tag": "{{.Name}}", "labels": "a", "compress": "true", "mode": "non-blocking"}, want: Options{MaxSize: 10_000_000, MaxFile: 3}},

		{name: "no number", in: map[string]string{"max-size": "m"}, wantErr: `max-size "m"`},
		{name: "empty size", in: map[string]string{"max-size": ""}, wantErr: `max-size ""`},
		{name: "bad unit", in: map[string]string{"max-size": "10x"}, wantErr: `invalid suffix: 'x'`},
		{name: "long unit", in: map[string]string{"max-size": "10mbb"}, wantErr: `invalid suffix`},
		{name: "negative", in: map[string]string{"max-size": "-1"}, wantErr: `max-size "-1"`},
		{name: "zero size", in: map[string]string{"max-size": "0"}, wantErr: "must be a positive size"},
		{name: "file zero", in: map[string]string{"max-file": "0"}, wantErr: "must be at least 1"},
		{name: "file not int", in: map[string]string{"max-file": "three"}, wantErr: `max-file "three": not an integer`},
		{name: "compress not bool", in: map[string]string{"compress": "maybe"}, wantErr: `compress "maybe"`},
		{name: "unknown key", in: map[string]string{"max_size": "10m"}, wantErr: `unknown option "max_size"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseOptions(%v) = %+v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseOptions(%v) error = %v, want ErrInvalidOption containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOptions(%v): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseOptions(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

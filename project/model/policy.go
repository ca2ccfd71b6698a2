package model

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseRestart reads a restart policy as docker does: "no" (or ""),
// "always", "unless-stopped", "on-failure" or "on-failure:N". The loader
// refuses any other spelling, so that a typo never silently means "no"; the
// supervisor parses again with the same function.
func ParseRestart(s string) (name string, max int, err error) {
	name, arg, hasArg := strings.Cut(s, ":")
	switch name {
	case "", "no":
		if hasArg {
			return "", 0, fmt.Errorf("invalid restart policy %q: %q takes no maximum", s, name)
		}
		return "no", 0, nil
	case "always", "unless-stopped":
		if hasArg {
			return "", 0, fmt.Errorf("invalid restart policy %q: %q takes no maximum", s, name)
		}
		return name, 0, nil
	case "on-failure":
		if hasArg {
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return "", 0, fmt.Errorf("invalid restart policy %q: the maximum must be a number of at least 0", s)
			}
			max = n
		}
		return name, max, nil
	}
	return "", 0, fmt.Errorf("invalid restart policy %q: use no, always, on-failure[:max] or unless-stopped", s)
}

// ParseSignal reads a signal as compose and docker accept it: "SIGINT",
// "INT", "int" or "2". "" is SIGTERM.
func ParseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

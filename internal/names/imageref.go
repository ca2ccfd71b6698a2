package names

import "strings"

// ImageRef checks an image reference by the rules docker applies
// (distribution/reference's grammar, as its ParseNormalizedNamed reads a
// reference): "../../x", "/etc/passwd" and "a//b" are not references.
//
// The grammar is walked by hand rather than through distribution/reference:
// that package compiles a dozen regular expressions when the program starts,
// and the supervisor's binary is also every container's init, which paid
// them at each start though it never reads a reference. names_test.go checks
// this walk against distribution/reference on many generated references.
func ImageRef(ref string) error {
	if why := imageRefProblem(ref); why != "" {
		return invalid("invalid reference format %q: %s", ref, why)
	}
	return nil
}

// imageRefProblem returns why ref is not a reference, or "".
func imageRefProblem(ref string) string {
	if len(ref) == 64 && IsLowerHex(ref) {
		return "a 64-character hexadecimal string is an image ID, not a repository name"
	}
	// Docker Hub's defaults come first, as docker completes a familiar
	// name: "busybox" is docker.io/library/busybox.
	domain, remainder := "docker.io", ""
	first, rest, ok := strings.Cut(ref, "/")
	switch {
	case !ok:
		remainder = "library/" + ref
	case first == "index.docker.io":
		remainder = rest
	case first == "localhost" || strings.ContainsAny(first, ".:") || strings.ToLower(first) != first:
		domain, remainder = first, rest
	default:
		remainder = ref
	}
	if domain == "docker.io" && !strings.Contains(remainder, "/") {
		remainder = "library/" + remainder
	}
	remote := remainder
	if i := strings.IndexByte(remainder, ':'); i >= 0 {
		remote = remainder[:i]
	}
	if strings.ToLower(remote) != remote {
		return "repository name must be lowercase"
	}
	return referenceProblem(domain + "/" + remainder)
}

// referenceProblem checks name[:tag][@digest].
func referenceProblem(s string) string {
	nameTag, dgst, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if why := digestProblem(dgst); why != "" {
			return why
		}
	}
	name, tag := nameTag, ""
	hasTag := false
	if i := strings.LastIndexByte(nameTag, ':'); i > strings.LastIndexByte(nameTag, '/') {
		name, tag, hasTag = nameTag[:i], nameTag[i+1:], true
	}
	if hasTag && !isTag(tag) {
		return "invalid tag"
	}
	// The first component is the registry when it can be one; else the
	// whole name is the repository path.
	path := name
	if first, rest, ok := strings.Cut(name, "/"); ok && isDomain(first) && isRemoteName(rest) {
		path = rest
	} else if !isRemoteName(name) {
		return "invalid repository name"
	}
	if len(path) > 255 {
		return "repository name must not be more than 255 characters"
	}
	return ""
}

// isRemoteName: path components separated by single slashes.
func isRemoteName(s string) bool {
	for {
		c, rest, more := strings.Cut(s, "/")
		if !isPathComponent(c) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isPathComponent: runs of [a-z0-9] joined by one separator each: ".",
// "_", "__", or any number of "-".
func isPathComponent(s string) bool {
	i := 0
	for {
		start := i
		for i < len(s) && (isLowerAlpha(s[i]) || isDigit(s[i])) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(s) {
			return true
		}
		switch {
		case s[i] == '.':
			i++
		case strings.HasPrefix(s[i:], "__"):
			i += 2
		case s[i] == '_':
			i++
		case s[i] == '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// isDomain: a host name of dot-separated labels, or an IPv6 address in
// brackets, with an optional port.
func isDomain(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[:end+1], s[end+1:]
		inner := host[1 : len(host)-1]
		if inner == "" || strings.Trim(inner, "0123456789abcdefABCDEF:") != "" {
			return false
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		for _, label := range strings.Split(host, ".") {
			if !isDomainLabel(label) {
				return false
			}
		}
	}
	if port == "" {
		return true
	}
	return port[0] == ':' && len(port) > 1 && strings.Trim(port[1:], "0123456789") == ""
}

func isDomainLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// isTag: a word character, then up to 127 word characters, dots and dashes.
func isTag(s string) bool {
	if s == "" || len(s) > 128 || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isWord(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// digestProblem checks algorithm:hex, where the algorithm must be one docker
// can verify and the hex its hash's length in lowercase.
func digestProblem(s string) string {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || !isDigestAlgorithm(alg) || len(hex) < 32 || !isHex(hex) {
		return "invalid digest"
	}
	size := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	switch {
	case size == 0:
		return "unsupported digest algorithm"
	case len(hex) != size:
		return "invalid digest length"
	case !IsLowerHex(hex):
		return "invalid digest"
	}
	return ""
}

// isDigestAlgorithm: letter-led runs of letters and digits joined by one of
// "-_+.".
func isDigestAlgorithm(s string) bool {
	i := 0
	for {
		if i == len(s) || !isAlpha(s[i]) {
			return false
		}
		for i < len(s) && (isAlpha(s[i]) || isDigit(s[i])) {
			i++
		}
		if i == len(s) {
			return true
		}
		if !strings.ContainsRune("-_+.", rune(s[i])) {
			return false
		}
		i++
	}
}

func isLowerAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool      { return isLowerAlpha(c) || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isWord(c byte) bool       { return isAlpha(c) || isDigit(c) || c == '_' }

func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// IsLowerHex reports whether s holds only the digits of lowercase
// hexadecimal (as image IDs and sha256 digests are written).
func IsLowerHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

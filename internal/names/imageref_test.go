package names

import (
	// As in berth's binaries (TLS links it), so that distribution/reference
	// knows sha384 and sha512 digests here too.
	_ "crypto/sha512"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// imageRefCases are references at the edges of docker's grammar.
var imageRefCases = []string{
	"", "busybox", "busybox:1.36", "busybox:latest@sha256:" + strings.Repeat("a", 64),
	"library/busybox", "docker.io/busybox", "docker.io/library/busybox", "index.docker.io/busybox",
	"index.docker.io/a/b", "localhost/app", "localhost:5000/app:v1", "localhost:/app", "localhost:50a/app",
	"example.com/a/b/c", "Example.COM/a", "EXAMPLE/a", "example/A", "a/B", "UPPER", "upper:TAG",
	"[::1]:5000/app", "[::1]/app", "[]/app", "[::g]/app", "[::1/app", "127.0.0.1:5000/x",
	"-a.com/x", "a-.com/x", "a..com/x", "a.com./x", "a.com:/x", "a.com:5000:1/x",
	"a//b", "/etc/passwd", "../../x", "a/..", "a/.b", "a/b.", "a__b", "a___b", "a_-b", "a--b", "a.-b", "a._b",
	"a/b:", "a/b:-x", "a/b:_x", "a/b:x.y-z", "a/b:" + strings.Repeat("t", 128), "a/b:" + strings.Repeat("t", 129),
	"a:b:c", "a/b:c/d", "a@sha256:" + strings.Repeat("a", 63), "a@sha256:" + strings.Repeat("A", 64),
	"a@sha512:" + strings.Repeat("0", 128), "a@sha384:" + strings.Repeat("0", 96), "a@md5:" + strings.Repeat("0", 32),
	"a@sha256+b64:" + strings.Repeat("0", 64), "a@sha256:" + strings.Repeat("0", 64) + "@x", "a@", "@sha256:" + strings.Repeat("0", 64),
	strings.Repeat("a", 64), strings.Repeat("f", 64), strings.Repeat("F", 64), strings.Repeat("a", 65),
	"a/" + strings.Repeat("b", 250), "a/" + strings.Repeat("b", 260), "example.com/" + strings.Repeat("b", 255),
	"example.com/" + strings.Repeat("b", 256), strings.Repeat("b", 248), strings.Repeat("b", 247),
	"a\nb", "a b", "é", "a/É", "a\x00b",
}

// TestImageRefMatchesDistribution checks ImageRef against the grammar's
// reference implementation on the cases above and on random strings over
// the characters that matter to it.
func TestImageRefMatchesDistribution(t *testing.T) {
	valid := 0
	check := func(s string) {
		_, derr := reference.ParseNormalizedNamed(s)
		if derr == nil {
			valid++
		}
		if err := ImageRef(s); (err == nil) != (derr == nil) {
			t.Errorf("%q: ImageRef says %v, distribution/reference says %v", s, err, derr)
		}
	}
	for _, s := range imageRefCases {
		check(s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab0Z.-_:/@[]9fx"
	pieces := []string{"sha256:", strings.Repeat("a", 32), strings.Repeat("0", 64), "localhost", "docker.io/", "index.docker.io/", "__", "--", ":5000", "[::1]"}
	for range 300000 {
		var b strings.Builder
		for n := r.IntN(12); n > 0; n-- {
			if r.IntN(6) == 0 {
				b.WriteString(pieces[r.IntN(len(pieces))])
			} else {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
		}
		check(b.String())
	}
	// The random strings must reach both answers often.
	if valid < 10000 {
		t.Errorf("only %d of the strings were references", valid)
	}
}

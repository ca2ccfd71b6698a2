package cli

import (
	"bufio"
	"io"
	"strings"
)

// confirmed reads a y/yes answer to a question; anything else, end of
// input included, is no.
func confirmed(in io.Reader) bool {
	line, _ := bufio.NewReader(in).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

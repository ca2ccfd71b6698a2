// Command sshcheck is run by a build's RUN --mount=type=ssh: it connects
// to $SSH_AUTH_SOCK and prints what it finds there: with "line", the first
// line the socket sends; with "keys", the fingerprints of the agent's keys.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func main() {
	sock := os.Getenv("SSH_AUTH_SOCK")
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println("socket", sock)
	if len(os.Args) > 1 && os.Args[1] == "keys" {
		keys, err := agent.NewClient(c).List()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, k := range keys {
			pk, err := ssh.ParsePublicKey(k.Blob)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println("key", ssh.FingerprintSHA256(pk))
		}
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print("line ", line)
}

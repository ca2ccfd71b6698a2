// Command holdsrv greets every TCP connection on :80 with "ok\n", reads it
// to its end and then closes it, for the connection flood test: one process
// holds thousands of connections, where busybox httpd forks for each.
package main

import (
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ln, err := net.Listen("tcp", ":80")
	if err != nil {
		log.Fatal(err)
	}
	// As PID 1 without an init, SIGTERM would otherwise be ignored.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Print(err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			if _, err := io.WriteString(c, "ok\n"); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

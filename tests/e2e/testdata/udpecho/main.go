// Command udpecho answers every UDP datagram on :9000 with "echo: " and the
// datagram, and "whoami" with its hostname, for the published UDP port
// tests.
package main

import (
	"log"
	"net"
	"os"
)

func main() {
	pc, err := net.ListenPacket("udp", ":9000")
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		reply := append([]byte("echo: "), buf[:n]...)
		if string(buf[:n]) == "whoami" { // which replica answers
			h, _ := os.Hostname()
			reply = []byte(h)
		}
		if _, err := pc.WriteTo(reply, from); err != nil {
			log.Print(err)
		}
	}
}

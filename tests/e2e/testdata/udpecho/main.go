// Command udpecho answers every UDP datagram on :9000 with "echo: " and the
// datagram, for the published UDP port test.
package main

import (
	"log"
	"net"
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
		if _, err := pc.WriteTo(append([]byte("echo: "), buf[:n]...), from); err != nil {
			log.Print(err)
		}
	}
}

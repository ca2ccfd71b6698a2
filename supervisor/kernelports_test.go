package supervisor

import "testing"

func TestKernelServes(t *testing.T) {
	for _, tc := range []struct {
		hostIP string
		ok     bool
	}{
		{"", true},
		{"127.0.0.1", true},
		{"0.0.0.0", true},
		{"::1", false},
		{"::", false},
		{"not-an-ip", false},
	} {
		if got := kernelServes(PortBinding{HostIP: tc.hostIP, HostPort: 80, Target: 80, Protocol: "tcp"}) == ""; got != tc.ok {
			t.Errorf("host IP %q: served in the kernel %v, want %v", tc.hostIP, got, tc.ok)
		}
	}
}

func TestEstablishedOn(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 020011AC:0050 010011AC:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 020011AC:0050 010011AC:C351 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
   3: 020011AC:1F90 010011AC:C352 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`
	for _, tc := range []struct {
		ports map[uint16]bool
		want  int
	}{
		{map[uint16]bool{80: true}, 1}, // the listener and the TIME_WAIT do not count
		{map[uint16]bool{80: true, 8080: true}, 2},
		{map[uint16]bool{443: true}, 0},
	} {
		if got := establishedOn(table, tc.ports); got != tc.want {
			t.Errorf("ports %v: %d, want %d", tc.ports, got, tc.want)
		}
	}
}

func TestPortMode(t *testing.T) {
	for _, tc := range []struct {
		env    string
		kernel bool
		err    bool
	}{
		{"", true, false},
		{"userspace", false, false},
		{"kernel", true, false},
		{"fast", true, true},
	} {
		t.Setenv(ProxyEnv, tc.env)
		kernel, err := portMode()
		if kernel != tc.kernel || (err != nil) != tc.err {
			t.Errorf("%s=%q: kernel %v, err %v", ProxyEnv, tc.env, kernel, err)
		}
	}
}

package api

import "testing"

// TestConnsFor: the network listener's share of the descriptors leaves the socket's and the
// reserve, and never exceeds MaxConns.
func TestConnsFor(t *testing.T) {
	for _, c := range []struct {
		name   string
		nofile uint64
		want   int
	}{
		{"container default", 1 << 20, MaxConns},
		{"huge", 1 << 62, MaxConns},
		{"4096", 4096, MaxConns},
		{"tight", 600, 600 - SocketConns - FDReserve},
		{"tiny", 256, 8},
		{"zero", 0, 8},
	} {
		if got := connsFor(c.nofile); got != c.want {
			t.Errorf("%s: connsFor(%d) = %d, want %d", c.name, c.nofile, got, c.want)
		}
	}
}

package process

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// listeningInodes returns the socket inodes of TCP sockets (v4 and v6) listening on port in
// the agent's network namespace (<proc>/net/tcp{,6}), which in a pod is the application's too.
//
// Reading these two files and then the fd links of the candidate processes is what
// gopsutil's net.Connections does as well, but it resolves every socket of every process
// before filtering; see BenchmarkPortLookup for the difference.
func listeningInodes(proc string, port int) (map[uint64]bool, error) {
	inodes := map[uint64]bool{}
	found := false
	for _, name := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(filepath.Join(proc, "net", name))
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, err
		}
		found = true
		parseListening(data, port, inodes)
	}
	if !found {
		return nil, errors.New(filepath.Join(proc, "net", "tcp") + " not found")
	}
	return inodes, nil
}

// tcpListen is st 0A (TCP_LISTEN) in /proc/net/tcp.
const tcpListen = "0A"

func parseListening(data []byte, port int, into map[uint64]bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpListen {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
			continue
		}
		if ino, err := strconv.ParseUint(f[9], 10, 64); err == nil && ino != 0 {
			into[ino] = true
		}
	}
}

// holdsSocket reports whether pid has a file descriptor on one of the socket inodes.
func holdsSocket(proc string, pid int, inodes map[uint64]bool) bool {
	dir := filepath.Join(proc, strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		s, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil && inodes[ino] {
			return true
		}
	}
	return false
}

package request

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chaoscron/chaoscron/pkg/fault/internal/netns"
)

// tcpListen is the state of a listening socket in /proc/net/tcp (TCP_LISTEN).
const tcpListen = "0A"

// listening reports whether a TCP socket listens on port in the namespace, from the
// namespace's own /proc/net/tcp and tcp6 (read by a thread inside it). A redirect of a port
// nobody serves would only turn "connection refused" into connections the proxy accepts and
// closes: a typo in port, which Plan reports instead.
func listening(proc string, ns *netns.NS, port uint16) (bool, error) {
	found := false
	err := ns.Do(func() error {
		for _, name := range []string{"tcp", "tcp6"} {
			f, err := os.Open(filepath.Join(proc, "thread-self/net", name))
			if err != nil {
				if os.IsNotExist(err) && name == "tcp6" {
					continue // no IPv6 in this kernel
				}
				return err
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				// "  0: 00000000:1F90 00000000:0000 0A ..." local address:port (hex), state.
				fs := strings.Fields(sc.Text())
				if len(fs) < 4 || fs[3] != tcpListen {
					continue
				}
				i := strings.LastIndexByte(fs[1], ':')
				if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && uint16(p) == port {
					found = true
				}
			}
			err = sc.Err()
			f.Close()
			if err != nil || found {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read the listening sockets of %s: %w", ns, err)
	}
	return found, nil
}

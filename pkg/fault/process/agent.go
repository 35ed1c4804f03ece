package process

import (
	"debug/buildinfo"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// agentPackage is the main package of the chaoscron binary. A process is a chaoscron process
// when the Go build info of its executable names this package: a name proves nothing (a
// second agent may be installed as chaoscron-v2, and `exec -a chaoscron sleep` gives any
// program that argv[0]), while the build info is written by the Go linker into the binary.
// Test binaries of the module have other main packages (…/process.test) and do not count.
const agentPackage = "github.com/chaoscron/chaoscron/cmd/chaoscron"

// agentPackages are the main packages that mark a chaoscron process: agentPackage, and this
// binary's own main package when it is an agent built from a renamed module (a fork), so that
// two agents of one build always recognise each other.
var agentPackages = sync.OnceValue(func() []string {
	pkgs := []string{agentPackage}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != agentPackage && strings.HasSuffix(bi.Path, "/cmd/chaoscron") {
		pkgs = append(pkgs, bi.Path)
	}
	return pkgs
})

// exeKey names one version of an executable file. The inode alone could be a deleted binary's
// reused by a new one; size and change time tell those apart.
type exeKey struct {
	dev, ino uint64
	size     int64
	ctime    syscall.Timespec
}

// isAgent reports whether pid runs a chaoscron binary, judged by the build info of
// <proc>/<pid>/exe. The file is opened through the magic link (so a deleted or replaced binary,
// or one in another mount namespace, is still the one the process runs), and the answer is
// cached by device and inode: a scan of many processes parses each distinct binary once. An
// executable that cannot be opened (a kernel thread, a process of another user when not root)
// or is not a Go program is not chaoscron's.
func (s *scanner) isAgent(pid int) bool {
	f, err := os.Open(filepath.Join(s.proc, strconv.Itoa(pid), "exe"))
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	key := exeKey{dev: st.Dev, ino: st.Ino, size: st.Size, ctime: st.Ctim}
	if agent, ok := s.agents[key]; ok {
		return agent
	}
	agent := false
	if bi, err := buildinfo.Read(f); err == nil {
		for _, p := range agentPackages() {
			agent = agent || bi.Path == p
		}
	}
	if s.agents == nil {
		s.agents = map[exeKey]bool{}
	}
	s.agents[key] = agent
	return agent
}

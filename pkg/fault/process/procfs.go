package process

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// pfKthread is PF_KTHREAD in the flags field of /proc/<pid>/stat. It is the one reliable sign
// of a kernel thread: "ppid 2" is not (in a pid namespace pid 2 is an ordinary process), and
// an empty command line is shared with zombies.
const pfKthread = 0x00200000

// stat is what the fault needs from /proc/<pid>/stat.
type stat struct {
	comm       string // the name ps shows, cut at 15 characters
	state      byte   // R, S, D, T, t, Z, X, …
	ppid       int    // 0 when the parent is outside the pid namespace
	flags      uint64 // PF_* flags
	startTicks uint64 // start time in clock ticks after boot: with the boot id, the identity of a process
}

var errGone = errors.New("process is gone")

func readStat(proc string, pid int) (stat, error) {
	data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return stat{}, errGone
	}
	if err != nil {
		return stat{}, err
	}
	return parseStat(data)
}

// parseStat parses "pid (comm) state ppid …". comm may hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(data []byte) (stat, error) {
	begin, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if begin < 0 || end < begin || end+2 > len(data) {
		return stat{}, fmt.Errorf("malformed stat %q", data)
	}
	f := strings.Fields(string(data[end+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("malformed stat %q", data)
	}
	s := stat{comm: string(data[begin+1 : end]), state: f[0][0]}
	var err1, err2, err3 error
	s.ppid, err1 = strconv.Atoi(f[1])
	s.flags, err2 = strconv.ParseUint(f[9-3], 10, 64)
	s.startTicks, err3 = strconv.ParseUint(f[22-3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return stat{}, fmt.Errorf("malformed stat %q: %w", data, err)
	}
	return s, nil
}

// gone reports whether a process in this state has ended (a zombie waits only for its parent).
func (s stat) gone() bool { return s.state == 'Z' || s.state == 'X' || s.state == 'x' }

// stopped reports a process stopped by a signal or by a tracer.
func (s stat) stopped() bool { return s.state == 'T' || s.state == 't' }

func readBootID(proc string) string {
	data, err := os.ReadFile(filepath.Join(proc, "sys", "kernel", "random", "boot_id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// checkOwnProcfs makes sure proc is the procfs of the agent's own pid namespace before any
// signal is sent: pids read from anything else (a fixture, a host /proc mounted into a
// container) name other processes in this namespace, or none.
func checkOwnProcfs(proc string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(proc, &fs); err != nil {
		return fmt.Errorf("%s: %w", proc, err)
	}
	if fs.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not a procfs: refusing to signal pids read from it", proc)
	}
	self, err := os.Readlink(filepath.Join(proc, "self"))
	if err != nil {
		return fmt.Errorf("%s: %w", proc, err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("%s belongs to another pid namespace (it calls this process %s, not %d): refusing to signal pids read from it",
			proc, self, os.Getpid())
	}
	return nil
}

// Bounds on how much of a command line is read. The kernel hands out the whole of it (up to
// ARG_MAX, 2 MiB by default), and a regular expression costs up to its size times the length
// of its input: `[a-z]{1,1000}x` took seconds over a 1.5 MB command line, per process.
const (
	// maxMatchCmdline is what the cmdline matcher sees: the first 4 KiB, as pkill -f and pgrep -f
	// (procps matches against a 4096-byte buffer), and all that kernels before 4.2 showed. One
	// match then stays within milliseconds even for a pattern at Go's repeat limit.
	maxMatchCmdline = 4 << 10
	// maxProtectCmdline is what agent.protect sees: up to MAX_ARG_STRLEN (128 KiB, the longest
	// single argument the kernel allows), so that a Java main class behind a long class path
	// stays protected. Protection is only worked out for processes that matched, so it is
	// not paid across the scan.
	maxProtectCmdline = 128 << 10
)

// readCmdline reads at most len(buf) bytes of /proc/<pid>/cmdline into buf and returns them
// with argv[0]; the arguments are joined by single spaces (the form every matcher sees). The
// command line is empty for a kernel thread or a zombie.
func readCmdline(proc string, pid int, buf []byte) (cmdline, argv0 string, err error) {
	f, err := os.Open(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", "", err
	}
	b := buf[:n]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		argv0 = string(b[:i])
	} else {
		argv0 = string(b)
	}
	b = bytes.TrimSuffix(b, []byte{0})
	for i, c := range b { // in place: buf is the caller's scratch space
		if c == 0 {
			b[i] = ' '
		}
	}
	return string(b), argv0, nil
}

// prefix cuts s to at most n bytes, at a rune boundary.
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

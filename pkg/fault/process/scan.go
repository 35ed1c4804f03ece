package process

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/process"
)

// bootTimeCache turns on gopsutil's boot time cache once: without it every create time
// re-reads /proc/stat. It is a gopsutil-wide switch, so it is flipped on first use, not in init.
// Create times are for people only (see handle.identify), so a boot time cached from another
// procfs root (a test fixture) does no harm.
var bootTimeCache sync.Once

// psContext points gopsutil at env.Proc through its context key rather than the HOST_PROC
// environment variable, which would be process-wide.
func psContext(ctx context.Context, proc string) context.Context {
	bootTimeCache.Do(func() { process.EnableBootTimeCache(true) })
	return context.WithValue(ctx, common.EnvKey, common.EnvMap{common.HostProcEnvKey: proc})
}

// candidate is a matching process that may be chosen.
type candidate struct {
	pid        int
	startTicks uint64
	cmdline    string
}

// scanner finds the processes a config matches. It lives for one Plan and remembers the
// stat of every process it looked at, for the walks up the process tree.
type scanner struct {
	ctx    context.Context // carries gopsutil's procfs root
	proc   string
	cfg    *config
	env    fault.Env
	stats  map[int]stat
	guard  map[int]string // protected pids and why: PID 1, the agent and its ancestors
	uid    int            // resolved cfg.user, -1 if unset
	inodes map[uint64]bool
	agents map[exeKey]bool // executables looked at, and whether each is a chaoscron binary
	buf    []byte          // for reading command lines, maxProtectCmdline long

	scanned   int
	protected []string // "pid 1 (sleep): PID 1", for the no-match error and the log
}

func newScanner(ctx context.Context, cfg *config, env fault.Env) (*scanner, error) {
	s := &scanner{
		ctx:   psContext(ctx, env.Proc),
		proc:  env.Proc,
		cfg:   cfg,
		env:   env,
		stats: map[int]stat{},
		guard: map[int]string{1: "PID 1 (init, or the pause container of a pod)"},
		uid:   -1,
	}
	// Env.Self is the agent; the process running this code is protected as well, so that an
	// Env with a wrong Self can never make the agent signal itself or its parents.
	self := env.Self
	if self <= 0 {
		self = os.Getpid()
	}
	s.guard[self] = "the agent itself"
	s.guard[os.Getpid()] = "the agent itself"
	for _, start := range []int{self, os.Getpid()} {
		for _, a := range s.ancestors(start) {
			if _, ok := s.guard[a]; !ok {
				s.guard[a] = "an ancestor of the agent"
			}
		}
	}
	s.env.Self = self

	if cfg.user != "" {
		uid, err := lookupUID(cfg.user)
		if err != nil {
			return nil, err
		}
		s.uid = uid
	}
	if cfg.port != 0 {
		inodes, err := listeningInodes(env.Proc, cfg.port)
		if err != nil {
			return nil, fmt.Errorf("listening sockets: %w", err)
		}
		s.inodes = inodes
	}
	return s, nil
}

func lookupUID(name string) (int, error) {
	if uid, err := strconv.Atoi(name); err == nil {
		return uid, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w (a numeric uid needs no lookup)", name, err)
	}
	return strconv.Atoi(u.Uid)
}

func (s *scanner) stat(pid int) (stat, error) {
	if st, ok := s.stats[pid]; ok {
		return st, nil
	}
	st, err := readStat(s.proc, pid)
	if err == nil {
		s.stats[pid] = st
	}
	return st, err
}

// ancestors lists pid's parent, grandparent, … up to the top of the pid namespace.
func (s *scanner) ancestors(pid int) []int {
	var out []int
	for range 4096 { // a pid chain is never this long; the bound only guards against a bad fixture
		st, err := s.stat(pid)
		if err != nil || st.ppid <= 0 {
			return out
		}
		pid = st.ppid
		out = append(out, pid)
	}
	return out
}

// pids lists the pids to look at: the one in the pidfile, or every process.
func (s *scanner) pids() ([]int32, string, error) {
	if s.cfg.pidfile == "" {
		pids, err := process.PidsWithContext(s.ctx)
		if err != nil {
			return nil, "", fmt.Errorf("list processes: %w", err)
		}
		return pids, "", nil
	}
	data, err := os.ReadFile(s.cfg.pidfile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "pidfile " + s.cfg.pidfile + " does not exist", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("pidfile: %w", err)
	}
	pid, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 32)
	if err != nil || pid <= 0 {
		return nil, "", fmt.Errorf("pidfile %s does not hold a pid: %q", s.cfg.pidfile, strings.TrimSpace(string(data)))
	}
	return []int32{int32(pid)}, "", nil
}

// find returns every matching process that may be touched. why explains an empty result.
func (s *scanner) find() (cands []candidate, why string, err error) {
	if s.inodes != nil && len(s.inodes) == 0 {
		return nil, fmt.Sprintf("nothing listens on TCP port %d", s.cfg.port), nil
	}
	pids, why, err := s.pids()
	if err != nil || why != "" {
		return nil, why, err
	}
	for _, pid32 := range pids {
		if err := s.ctx.Err(); err != nil {
			return nil, "", err
		}
		s.scanned++
		if c, ok := s.consider(int(pid32)); ok {
			cands = append(cands, c)
		}
	}
	return cands, "", nil
}

// consider matches one process and, if it matches, checks it may be touched. The matchers go
// cheapest first, and protection is only worked out for processes that match: listing stays
// a readdir of /proc plus a cmdline read per process (and a stat read for name matching).
func (s *scanner) consider(pid int) (candidate, bool) {
	cfg := s.cfg
	// With nothing cheaper to go by, the socket owners are few: look at them first.
	portFirst := s.inodes != nil && cfg.cmdline == nil && cfg.name == nil
	if portFirst && !holdsSocket(s.proc, pid, s.inodes) {
		return candidate{}, false
	}
	p := &process.Process{Pid: int32(pid)}
	if s.buf == nil {
		s.buf = make([]byte, maxProtectCmdline)
	}
	full, argv0, err := readCmdline(s.proc, pid, s.buf)
	if err != nil || full == "" {
		return candidate{}, false // gone, or a kernel thread or zombie (they have no command line)
	}
	argv0 = filepath.Base(argv0)
	cmdline := prefix(full, maxMatchCmdline)
	if cfg.cmdline != nil && !cfg.cmdline.MatchString(cmdline) {
		return candidate{}, false
	}
	var st stat
	if cfg.name != nil && !cfg.name.match(argv0) {
		if st, err = s.stat(pid); err != nil || !cfg.name.match(st.comm) {
			return candidate{}, false
		}
	}
	if cfg.exe != "" {
		exe, err := p.ExeWithContext(s.ctx)
		exe = strings.TrimSuffix(exe, " (deleted)")
		if err != nil || filepath.IsAbs(cfg.exe) && exe != cfg.exe || !filepath.IsAbs(cfg.exe) && filepath.Base(exe) != cfg.exe {
			return candidate{}, false
		}
	}
	if s.uid >= 0 {
		uids, err := p.UidsWithContext(s.ctx)
		if err != nil || len(uids) < 2 || int(uids[1]) != s.uid { // effective uid, as pkill -u
			return candidate{}, false
		}
	}
	if s.inodes != nil && !portFirst && !holdsSocket(s.proc, pid, s.inodes) {
		return candidate{}, false
	}

	// It matches. May it be touched?
	if st, err = s.stat(pid); err != nil || st.gone() {
		return candidate{}, false
	}
	if why := s.protection(pid, st, argv0, full); why != "" {
		s.protected = append(s.protected, fmt.Sprintf("pid %d (%s): %s", pid, argv0, why))
		return candidate{}, false
	}
	return candidate{pid: pid, startTicks: st.startTicks, cmdline: cmdline}, true
}

// protection says why pid must not be touched, or "" if it may be. None of these can be
// turned off by configuration.
func (s *scanner) protection(pid int, st stat, argv0, cmdline string) string {
	if why, ok := s.guard[pid]; ok {
		return why
	}
	if st.flags&pfKthread != 0 {
		return "a kernel thread"
	}
	if slices.Contains(s.ancestors(pid), s.env.Self) {
		return "a descendant of the agent"
	}
	if s.isAgent(pid) { // by its executable, never by its name: see agentPackage
		return "a chaoscron process"
	}
	for _, re := range s.env.Protect {
		if re.MatchString(st.comm) || re.MatchString(argv0) || re.MatchString(cmdline) {
			return "protected by agent.protect " + strconv.Quote(re.String())
		}
	}
	if s.cfg.action == actionStop && st.stopped() {
		// Not ours to resume later: whoever stopped it (a debugger, job control) would find
		// it running again after our revert.
		return "already stopped by someone else"
	}
	return ""
}

// choose picks the processes to act on, at random (seeded) when not all of them; the result
// is sorted by pid. A percent is rounded to the nearest whole process, and at least one.
func choose(cands []candidate, cfg *config, seed uint64) []candidate {
	n := len(cands)
	k := n
	switch {
	case cfg.percent > 0:
		k = min(max(int(math.Round(cfg.percent.Fraction()*float64(n))), 1), n)
	case !cfg.all:
		k = min(cfg.count, n)
	}
	sorted := slices.SortedFunc(slices.Values(cands), func(a, b candidate) int { return a.pid - b.pid })
	if k == n {
		return sorted
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, 0x63686f6f7365)) // "choose"
	picked := make([]candidate, 0, k)
	for _, i := range r.Perm(n)[:k] {
		picked = append(picked, sorted[i])
	}
	slices.SortFunc(picked, func(a, b candidate) int { return a.pid - b.pid })
	return picked
}

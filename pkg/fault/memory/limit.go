package memory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// constraint is one memory limit the agent lives under, with what is in use against it.
type constraint struct {
	name  string // for messages: which file the limit came from
	limit int64
	usage int64
}

// margin is what is always left free under a limit: max(64MiB, 10% of the limit). It covers
// the agent's own growth while the fault holds, and usage that moved since it was read.
func margin(limit int64) int64 { return max(64<<20, limit/10) }

func (c constraint) headroom() int64 { return c.limit - c.usage - margin(c.limit) }

// budget is what Plan needs: the limit a percent refers to (the tightest one) and the
// constraint with the least headroom, which decides how much may be allocated.
type budget struct {
	limit constraint
	avail constraint
}

// unlimited: cgroup v1 writes "no limit" as the largest page-aligned int64.
const unlimited = 1 << 62

// readBudget reads the host's memory (<proc>/meminfo) and every memory limit of the agent's
// own cgroup and of its ancestors up to the root that is visible (<sys>/fs/cgroup), because a
// limit on the pod's cgroup kills the agent as surely as one on its container's.
//
// Usage is the working set: usage minus inactive file cache, which the kernel reclaims before
// it OOM-kills anything (the same figure the kubelet uses). Counting the cache would refuse
// faults in every container that has read a few files.
func readBudget(proc, sys string) (budget, error) {
	host, err := readMeminfo(filepath.Join(proc, "meminfo"))
	if err != nil {
		return budget{}, err
	}
	cs := []constraint{host}
	cg, err := readCgroups(proc, sys)
	if err != nil {
		return budget{}, err
	}
	cs = append(cs, cg...)
	b := budget{limit: cs[0], avail: cs[0]}
	for _, c := range cs[1:] {
		if c.limit < b.limit.limit {
			b.limit = c
		}
		if c.headroom() < b.avail.headroom() {
			b.avail = c
		}
	}
	return b, nil
}

func readMeminfo(path string) (constraint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return constraint{}, err
	}
	var total, avail int64 = -1, -1
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			total = n << 10
		case "MemAvailable":
			avail = n << 10
		}
	}
	if total <= 0 || avail < 0 {
		return constraint{}, fmt.Errorf("%s: no MemTotal or MemAvailable", path)
	}
	return constraint{name: "host memory (" + path + ")", limit: total, usage: max(total-avail, 0)}, nil
}

// cgroupVersion describes where one cgroup version keeps its memory figures.
type cgroupVersion struct {
	mount, limit, usage, inactive string
}

var (
	cgroupV1 = cgroupVersion{mount: "fs/cgroup/memory", limit: "memory.limit_in_bytes", usage: "memory.usage_in_bytes", inactive: "total_inactive_file"}
	cgroupV2 = cgroupVersion{mount: "fs/cgroup", limit: "memory.max", usage: "memory.current", inactive: "inactive_file"}
)

// readCgroups finds the agent's memory cgroup in <proc>/self/cgroup and reads the limits of it
// and of its ancestors. No cgroup information at all is not an error: then the host's memory
// is the only limit. A limit file that exists but cannot be read or parsed is: the fault
// refuses to guess at the one number that keeps the agent alive.
func readCgroups(proc, sys string) ([]constraint, error) {
	data, err := os.ReadFile(filepath.Join(proc, "self", "cgroup"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v1, v2 string
	have1, have2 := false, false
	for line := range strings.Lines(string(data)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2, have2 = f[2], true
		}
		for c := range strings.SplitSeq(f[1], ",") {
			if c == "memory" {
				v1, have1 = f[2], true
			}
		}
	}
	// The memory controller is bound to one hierarchy. If a v1 hierarchy has it (also on
	// hybrid hosts, which have a unified hierarchy without it), that is the one.
	switch {
	case have1:
		return walkCgroup(sys, cgroupV1, v1)
	case have2:
		return walkCgroup(sys, cgroupV2, v2)
	}
	return nil, nil
}

func walkCgroup(sys string, v cgroupVersion, path string) ([]constraint, error) {
	root := filepath.Join(sys, v.mount)
	dir := filepath.Join(root, path)
	if _, err := os.Stat(dir); err != nil {
		// In a container without its own cgroup namespace, /proc/self/cgroup shows the host's
		// path while the container's cgroup is mounted as the root: the root is ours.
		dir = root
	}
	var cs []constraint
	for {
		c, ok, err := readLevel(dir, v)
		if err != nil {
			return nil, err
		}
		if ok {
			c.name = "cgroup " + filepath.Join("/", strings.TrimPrefix(dir, root)) + " (" + filepath.Join(dir, v.limit) + ")"
			cs = append(cs, c)
		}
		if dir == root || len(dir) <= len(root) {
			return cs, nil
		}
		dir = filepath.Dir(dir)
	}
}

// readLevel reads one cgroup directory; ok is false when it has no memory limit.
func readLevel(dir string, v cgroupVersion) (c constraint, ok bool, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, v.limit))
	if errors.Is(err, fs.ErrNotExist) {
		return c, false, nil // no memory controller at this level (the v2 root has none)
	}
	if err != nil {
		return c, false, err
	}
	s := strings.TrimSpace(string(raw))
	if s == "max" {
		return c, false, nil
	}
	limit, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return c, false, fmt.Errorf("%s: %q is not a number", filepath.Join(dir, v.limit), s)
	}
	if limit >= unlimited {
		return c, false, nil
	}
	usage, err := readInt(filepath.Join(dir, v.usage))
	if err != nil {
		return c, false, err
	}
	if stat, err := os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
		for line := range strings.Lines(string(stat)) {
			if k, val, _ := strings.Cut(strings.TrimSpace(line), " "); k == v.inactive {
				if n, err := strconv.ParseInt(val, 10, 64); err == nil && n <= usage {
					usage -= n
				}
			}
		}
	}
	return constraint{limit: limit, usage: usage}, true, nil
}

func readInt(path string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, strings.TrimSpace(string(raw)))
	}
	return n, nil
}

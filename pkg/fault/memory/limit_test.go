package memory

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// tree writes files (path → content, relative to the fixture root) and returns an Env whose
// Proc and Sys point into it.
func tree(t *testing.T, files map[string]string) fault.Env {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fault.Env{Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys")}
}

func meminfo(totalMiB, availMiB int64) string {
	return "MemTotal:       " + strconv.FormatInt(totalMiB<<10, 10) + " kB\n" +
		"MemFree:        1024 kB\n" +
		"MemAvailable:   " + strconv.FormatInt(availMiB<<10, 10) + " kB\n"
}

func b(miB int64) string { return strconv.FormatInt(miB*mib, 10) }

func TestPlanAgainstLimits(t *testing.T) {
	v2 := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"proc/meminfo":     meminfo(16384, 15360),
			"proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	const ctr = "sys/fs/cgroup/kubepods/pod1/ctr/"
	const pod = "sys/fs/cgroup/kubepods/pod1/"
	for _, tc := range []struct {
		name   string
		files  map[string]string
		params fault.Params
		bytes  int64  // planned size; 0 if Plan must refuse
		errHas string // part of the refusal
	}{
		{
			name:   "v2 fits",
			files:  v2(map[string]string{ctr + "memory.max": b(512), ctr + "memory.current": b(300)}),
			params: fault.Params{"size": "128MiB"},
			bytes:  128 * mib,
		},
		{
			// 512 − 300 − max(64, 51.2) = 148MiB
			name:   "v2 over limit minus usage minus margin",
			files:  v2(map[string]string{ctr + "memory.max": b(512), ctr + "memory.current": b(300)}),
			params: fault.Params{"size": "150MiB"},
			errHas: "at most 148MiB may be allocated (limit 512MiB from cgroup /kubepods/pod1/ctr",
		},
		{
			name:   "v2 inactive file cache is not usage",
			files:  v2(map[string]string{ctr + "memory.max": b(512), ctr + "memory.current": b(480), ctr + "memory.stat": "anon 1\ninactive_file " + b(300) + "\nactive_file 5\n"}),
			params: fault.Params{"size": "256MiB"},
			bytes:  256 * mib,
		},
		{
			name:   "v2 the pod's limit is tighter than the container's",
			files:  v2(map[string]string{ctr + "memory.max": "max", ctr + "memory.current": b(50), pod + "memory.max": b(256), pod + "memory.current": b(100)}),
			params: fault.Params{"size": "128MiB"},
			errHas: "at most 92MiB may be allocated (limit 256MiB from cgroup /kubepods/pod1 ",
		},
		{
			name:   "v2 percent of the tightest limit",
			files:  v2(map[string]string{ctr + "memory.max": "max", ctr + "memory.current": b(50), pod + "memory.max": b(256), pod + "memory.current": b(100)}),
			params: fault.Params{"percent": "25%"},
			bytes:  64 * mib,
		},
		{
			name:   "v2 unreadable limit is refused, not guessed",
			files:  v2(map[string]string{ctr + "memory.max": "lots\n", ctr + "memory.current": b(1)}),
			params: fault.Params{"size": "1MiB"},
			errHas: `"lots" is not a number`,
		},
		{
			// 1024 − 200 − 102.4 = 721.6MiB
			name: "v1",
			files: map[string]string{
				"proc/meminfo":     meminfo(16384, 15360),
				"proc/self/cgroup": "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
				"sys/fs/cgroup/memory/memory.usage_in_bytes":            b(4000),
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": b(1024),
				"sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": b(200),
				"sys/fs/cgroup/memory/docker/abc/memory.stat":           "inactive_file 5\ntotal_inactive_file 0\n",
			},
			params: fault.Params{"size": "722MiB"},
			errHas: "at most 721.6MiB may be allocated",
		},
		{
			name: "v1 percent",
			files: map[string]string{
				"proc/meminfo":     meminfo(16384, 15360),
				"proc/self/cgroup": "4:memory:/docker/abc\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": b(1024),
				"sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": b(200),
			},
			params: fault.Params{"percent": "50%"},
			bytes:  512 * mib,
		},
		{
			// No cgroup namespace: the host path is shown, the container's cgroup is the mount root.
			name: "v1 container view",
			files: map[string]string{
				"proc/meminfo":     meminfo(16384, 15360),
				"proc/self/cgroup": "4:memory:/kubepods/burstable/pod9/ctr9\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": b(256),
				"sys/fs/cgroup/memory/memory.usage_in_bytes": b(64),
			},
			params: fault.Params{"size": "200MiB"},
			errHas: "at most 128MiB may be allocated (limit 256MiB from cgroup / ",
		},
		{
			// Hybrid hosts: the unified hierarchy has no memory controller; v1's is the one.
			name: "hybrid uses v1",
			files: map[string]string{
				"proc/meminfo":     meminfo(16384, 15360),
				"proc/self/cgroup": "9:name=systemd:/\n4:memory:/job\n0::/\n",
				"sys/fs/cgroup/memory/job/memory.limit_in_bytes": b(128),
				"sys/fs/cgroup/memory/job/memory.usage_in_bytes": b(0),
			},
			params: fault.Params{"size": "100MiB"},
			errHas: "at most 64MiB may be allocated (limit 128MiB from cgroup /job",
		},
		{
			// 1024 − (1024 − 512) − 102.4 = 409.6MiB
			name:   "no cgroup: the host's memory",
			files:  map[string]string{"proc/meminfo": meminfo(1024, 512)},
			params: fault.Params{"size": "410MiB"},
			errHas: "at most 409.6MiB may be allocated (limit 1GiB from host memory",
		},
		{
			name:   "no cgroup: percent of the host's memory",
			files:  map[string]string{"proc/meminfo": meminfo(1024, 512)},
			params: fault.Params{"percent": "10%"},
			bytes:  roundUp(1024*mib/10, int64(pageSize)),
		},
		{
			name:   "a cgroup limit above the host's memory: the host decides",
			files:  v2(map[string]string{"proc/meminfo": meminfo(1024, 900), ctr + "memory.max": b(8192), ctr + "memory.current": b(10)}),
			params: fault.Params{"size": "800MiB"},
			errHas: "from host memory",
		},
		{
			name:   "no meminfo",
			files:  map[string]string{"proc/self/cgroup": "0::/\n"},
			params: fault.Params{"size": "1MiB"},
			errHas: "meminfo",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFault(t, tc.params, tree(t, tc.files))
			plan, err := f.Plan(context.Background(), "r1")
			if tc.bytes == 0 {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Plan = %s, %v; want an error containing %q", plan, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var u undo
			if err := json.Unmarshal(plan, &u); err != nil {
				t.Fatal(err)
			}
			if u.Bytes != tc.bytes || u.Run != "r1" {
				t.Fatalf("plan = %s, want run r1 and %d bytes", plan, tc.bytes)
			}
		})
	}
}

func TestPlanCountsMemoryOtherRunsStillFill(t *testing.T) {
	env := tree(t, map[string]string{"proc/meminfo": meminfo(1024, 1024)}) // at most 921.6MiB
	f := newFault(t, fault.Params{"size": "600MiB", "ramp": "1h"}, env)
	if _, err := f.Plan(context.Background(), "a"); err != nil {
		t.Fatalf("first plan: %v", err)
	}
	// A run in this process has mapped 600MiB and touched almost none of it yet.
	m, err := newMapping(600*mib, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.unmap()
	if !held.add("filling", m) {
		t.Fatal("add")
	}
	defer held.take("filling")
	_, err = f.Plan(context.Background(), "b")
	if err == nil || !strings.Contains(err.Error(), "still to be filled by other runs 600MiB") {
		t.Fatalf("second plan while 600MiB are still to come: %v", err)
	}
}

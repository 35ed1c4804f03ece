package memory

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/testenv"
)

// requireTHP skips (fails under CI) where the kernel has no transparent huge pages to give.
func requireTHP(t *testing.T) {
	t.Helper()
	const path = "/sys/kernel/mm/transparent_hugepage/enabled"
	data, err := os.ReadFile(path)
	testenv.Require(t, err == nil && !strings.Contains(string(data), "[never]"),
		fmt.Sprintf("transparent huge pages: %s is %q (%v)", path, strings.TrimSpace(string(data)), err))
}

// peek returns run's mapping, leaving it held.
func peek(t *testing.T, run string) *mapping {
	t.Helper()
	held.mu.Lock()
	defer held.mu.Unlock()
	m := held.m[run]
	if m == nil {
		t.Fatalf("run %s holds no memory", run)
	}
	return m
}

// smaps returns the figures (in bytes) of the /proc/self/smaps entry that covers exactly mem.
// None does if the mapping is not exactly mem: trimmed wrongly, or merged with a neighbour.
func smaps(t *testing.T, mem []byte) map[string]int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	header := fmt.Sprintf("%x-%x ", start, start+uintptr(len(mem)))
	var figures map[string]int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, header) {
			figures = map[string]int64{}
			continue
		}
		if figures == nil {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(k, " ") {
			break // the next mapping's header
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			figures[k] = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if figures == nil {
		t.Fatalf("no mapping %s-%x in /proc/self/smaps", header[:len(header)-1], start+uintptr(len(mem)))
	}
	return figures
}

// A size that is not a whole number of huge pages: the huge pages cover all but the last
// 1MiB+12KiB, which must get small pages, so that exactly the size is resident.
func TestHugePages(t *testing.T) {
	const size = 129*mib + 12<<10
	for _, tc := range []struct {
		name   string
		params fault.Params
		huge   bool
	}{
		{"by default", fault.Params{"size": "132108KiB"}, true},
		{"opted out", fault.Params{"size": "132108KiB", "huge_pages": false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.huge {
				requireTHP(t)
			}
			f := newFault(t, tc.params, fault.Env{})
			run := "huge-" + strconv.FormatBool(tc.huge)
			before := vmRSS(t)
			undo, err := f.Inject(context.Background(), mustPlan(t, f, run))
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			revertOnCleanup(t, f, undo)
			grown := vmRSS(t) - before

			m := peek(t, run)
			sm := smaps(t, m.mem)
			t.Logf("mapping at %p: Rss %dKiB, AnonHugePages %dKiB; VmRSS grew %dKiB",
				unsafe.SliceData(m.mem), sm["Rss"]>>10, sm["AnonHugePages"]>>10, grown>>10)
			if sm["Rss"] != size {
				t.Errorf("the mapping has %dKiB resident, want exactly %dKiB", sm["Rss"]>>10, size>>10)
			}
			if !within(grown, size, 0.02) {
				t.Errorf("resident memory grew by %.1fMiB, want %.1fMiB ±2%%", float64(grown)/mib, float64(size)/mib)
			}
			if !tc.huge {
				if sm["AnonHugePages"] != 0 {
					t.Errorf("opted out of huge pages, yet %dKiB are in huge pages", sm["AnonHugePages"]>>10)
				}
				return
			}
			pmd := hugePageSize("/sys")
			if addr := uintptr(unsafe.Pointer(unsafe.SliceData(m.mem))); addr%uintptr(pmd) != 0 {
				t.Errorf("mapping at %#x is not aligned to the %dKiB huge page size", addr, pmd>>10)
			}
			// All whole huge pages, unless memory is too fragmented for some of them: the
			// kernel then falls back to small pages, which is no fault of ours.
			whole := int64(size / pmd * pmd)
			if got := sm["AnonHugePages"]; got < whole*3/4 || got > whole {
				t.Errorf("%dKiB in huge pages, want most of the %dKiB the mapping has room for", got>>10, whole>>10)
			}
		})
	}
}

func TestHugePageSize(t *testing.T) {
	const dir = "sys/kernel/mm/transparent_hugepage/"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int
	}{
		{"madvise", map[string]string{dir + "enabled": "always [madvise] never\n", dir + "hpage_pmd_size": "2097152\n"}, 2 << 20},
		{"always, 512MiB pages", map[string]string{dir + "enabled": "[always] madvise never\n", dir + "hpage_pmd_size": "536870912\n"}, 512 << 20},
		{"never", map[string]string{dir + "enabled": "always madvise [never]\n", dir + "hpage_pmd_size": "2097152\n"}, 0},
		{"no sysfs", nil, 2 << 20},
		{"nonsense size", map[string]string{dir + "enabled": "[always] madvise never\n", dir + "hpage_pmd_size": "3000\n"}, 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hugePageSize(tree(t, tc.files).Sys); got != tc.want {
				t.Fatalf("hugePageSize = %d, want %d", got, tc.want)
			}
		})
	}
}

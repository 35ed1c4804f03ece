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

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/internal/testenv"
	"github.com/chaoscron/chaoscron/pkg/fault"
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

// smaps returns the figures (in bytes) of the mapping in /proc/self/smaps that holds mem, and
// whether that mapping is exactly mem. It may be larger: the kernel merges neighbouring
// anonymous mappings whose flags are alike (a MADV_NOHUGEPAGE region of the Go runtime's next
// to an opted-out fill, say), so figures of mem alone come from resident instead.
func smaps(t *testing.T, mem []byte) (figures map[string]int64, exact bool) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	end := start + uint64(len(mem))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(k, " ") { // a mapping's header: "start-end perms ..."
			if figures != nil {
				break
			}
			var lo, hi uint64
			if _, err := fmt.Sscanf(line, "%x-%x ", &lo, &hi); err == nil && lo <= start && end <= hi {
				figures, exact = map[string]int64{}, lo == start && hi == end
			}
			continue
		}
		if figures == nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			figures[k] = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if figures == nil {
		t.Fatalf("no mapping holds %x-%x in /proc/self/smaps", start, end)
	}
	return figures, exact
}

// resident is how many bytes of mem are resident, by mincore(2): mem's own pages, whatever
// mapping holds them.
func resident(t *testing.T, mem []byte) int64 {
	t.Helper()
	vec := make([]byte, (len(mem)+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)),
		uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n * int64(pageSize)
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
			sm, exact := smaps(t, m.mem)
			rss := resident(t, m.mem)
			t.Logf("mapping at %p: resident %dKiB, AnonHugePages %dKiB; VmRSS grew %dKiB",
				unsafe.SliceData(m.mem), rss>>10, sm["AnonHugePages"]>>10, grown>>10)
			if rss != size {
				t.Errorf("the mapping has %dKiB resident, want exactly %dKiB", rss>>10, size>>10)
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
			// The fill maps more than it needs to align its start, and must trim the rest
			// off: its mapping is exactly the fill (a huge-page mapping has nothing alike to
			// merge with).
			if !exact {
				t.Errorf("the mapping at %p is not exactly the fill's %dKiB: trimmed wrongly", unsafe.SliceData(m.mem), size>>10)
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

package vm

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnavailable is wrapped by Find's error when this machine cannot boot the test VM (no
// qemu, no kernel image, no busybox). Callers skip on a laptop and fail under CI.
var ErrUnavailable = errors.New("test VM unavailable")

// Host is what the harness uses from the machine it runs on.
type Host struct {
	Qemu    string // qemu-system-x86_64
	Kernel  string // /boot/vmlinuz-<Release>
	Release string // kernel release, e.g. 6.1.0-56-amd64
	Modules string // /lib/modules/<Release>
	Busybox string // a busybox binary (static or not: its libraries are copied either way)
	Tc      string // iproute2's tc, copied in as /usr/local/sbin/iproute-tc
	IP      string // iproute2's ip, copied in as /usr/local/sbin/iproute-ip
}

// Find looks for everything on the host. The kernel is the newest /boot/vmlinuz-* whose
// modules directory has sch_netem (the point of the VM); the machine's running kernel is
// irrelevant.
func Find() (*Host, error) {
	var missing []string
	h := &Host{}
	look := func(dst *string, names ...string) {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				*dst = p
				return
			}
			if filepath.IsAbs(n) {
				if _, err := os.Stat(n); err == nil {
					*dst = n
					return
				}
			}
		}
		missing = append(missing, names[0])
	}
	look(&h.Qemu, "qemu-system-x86_64")
	look(&h.Busybox, "busybox", "/bin/busybox")
	look(&h.Tc, "tc", "/usr/sbin/tc", "/sbin/tc")
	look(&h.IP, "ip", "/usr/sbin/ip", "/sbin/ip")

	images, _ := filepath.Glob("/boot/vmlinuz-*")
	slices.SortFunc(images, func(a, b string) int { return -compareVersions(a, b) })
	for _, img := range images {
		rel := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		mods := filepath.Join("/lib/modules", rel)
		if m, _ := filepath.Glob(filepath.Join(mods, "kernel/net/sched/sch_netem.ko*")); len(m) > 0 {
			if f, err := os.Open(img); err == nil { // readable (not 0600 for another user)
				f.Close()
				h.Kernel, h.Release, h.Modules = img, rel, mods
				break
			}
		}
	}
	if h.Kernel == "" {
		missing = append(missing, "/boot/vmlinuz-* with sch_netem in /lib/modules (Debian: linux-image-amd64)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing %s (Debian: qemu-system-x86 linux-image-amd64 busybox-static)", ErrUnavailable, strings.Join(missing, ", "))
	}
	return h, nil
}

// compareVersions orders "vmlinuz-6.1.0-9" before "vmlinuz-6.1.0-10".
func compareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	}
	x, y := split(a), split(b)
	for i := 0; i < len(x) && i < len(y); i++ {
		var nx, ny int
		_, ex := fmt.Sscan(x[i], &nx)
		_, ey := fmt.Sscan(y[i], &ny)
		switch {
		case ex == nil && ey == nil && nx != ny:
			return nx - ny
		case (ex != nil || ey != nil) && x[i] != y[i]:
			return strings.Compare(x[i], y[i])
		}
	}
	return len(x) - len(y)
}

// HostBinary adds the host executable src at p, with the shared libraries and the dynamic
// loader it needs (from ldd) at their host paths. A static binary is added alone.
func (a *Archive) HostBinary(p, src string) error {
	a.HostFile(p, src, 0o755)
	libs, err := sharedLibs(src)
	if err != nil {
		return err
	}
	for _, l := range libs {
		a.HostFile(l, l, 0o755)
	}
	return nil
}

// sharedLibs lists what the dynamic loader would load for bin, loader included, or nothing
// for a static binary.
func sharedLibs(bin string) ([]string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	dynamic := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			dynamic = true
		}
	}
	f.Close()
	if !dynamic {
		return nil, nil
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
		f := strings.Fields(sc.Text())
		for i, w := range f {
			if strings.HasPrefix(w, "/") && (i == 0 || f[i-1] == "=>") {
				libs = append(libs, w)
			}
		}
		if strings.Contains(sc.Text(), "not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, strings.TrimSpace(sc.Text()))
		}
	}
	return libs, nil
}

// modulePaths resolves module names (e.g. "sch_netem") to their files under h.Modules, with
// their dependencies from modules.dep, dependencies first.
func (h *Host) modulePaths(names []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(h.Modules, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	deps := map[string][]string{} // module name → [own path, dependency paths...]
	for _, line := range strings.Split(string(dep), "\n") {
		file, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[modName(file)] = append([]string{file}, strings.Fields(rest)...)
	}
	var out []string
	var add func(string) error
	add = func(name string) error {
		d, ok := deps[name]
		if !ok {
			return fmt.Errorf("module %s not in %s/modules.dep (built in?)", name, h.Modules)
		}
		for i := len(d) - 1; i >= 1; i-- { // modules.dep lists the deepest dependency last
			if err := add(modName(d[i])); err != nil {
				return err
			}
		}
		if !slices.Contains(out, d[0]) {
			out = append(out, d[0])
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	for _, p := range out {
		if !strings.HasSuffix(p, ".ko") {
			return nil, fmt.Errorf("module %s is compressed: busybox insmod cannot load it", p)
		}
	}
	return out, nil
}

func modName(file string) string {
	b := filepath.Base(file)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

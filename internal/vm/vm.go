// Package vm boots a throw-away Linux VM for kernel-level tests: things the machine's own
// kernel cannot do (it has no sch_netem) or that must not touch the machine (qdiscs on real
// interfaces, processes killed mid-fault).
//
// The VM is qemu with software emulation (-accel tcg; KVM is not assumed), the host's
// Debian kernel image, and an initramfs written here in Go (cpio newc + gzip, no cpio
// binary): busybox with its applet links, kernel modules (with their dependencies from
// modules.dep, loaded with insmod by /init), iproute2's tc and ip under other names
// (iproute-tc, iproute-ip, so busybox's own tc applet cannot shadow them) with their shared
// libraries, and whatever binaries the test adds. /init mounts the usual filesystems, brings
// lo up, runs each scenario (a shell script) between markers, and powers off:
//
//	@@vm ready
//	@@vm begin <name>
//	...scenario output...
//	@@vm end <name> rc=<exit status>
//	@@vm done
//
// Run returns the output split by scenario. The busybox/module/iproute2 part of the
// initramfs is built once per process (Base) and the per-boot part is appended to it as a
// second archive, which the kernel unpacks over the first. Only one VM runs at a time on
// the machine (a lock file in the temp directory), since emulation is CPU-heavy.
//
// The package lives under testdata so `go test ./...` does not treat it as a package of its
// own; tests import it as github.com/chaoscron/chaoscron/internal/vm.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultModules are loaded in every VM: what the network tests need.
var DefaultModules = []string{"sch_netem", "sch_prio", "cls_u32", "sch_tbf", "sch_htb", "veth", "dummy"}

// Base is the part of the initramfs shared by every boot.
type Base struct {
	Host    *Host
	Image   []byte   // gzip-compressed cpio
	Modules []string // paths in the image, in load order
	Took    time.Duration
}

var (
	baseMu    sync.Mutex
	baseCache = map[string]*Base{}
)

// BaseImage builds (once per process and module list) the shared part of the initramfs.
func BaseImage(h *Host, modules []string) (*Base, error) {
	key := h.Kernel + "|" + strings.Join(modules, ",")
	baseMu.Lock()
	defer baseMu.Unlock()
	if b, ok := baseCache[key]; ok {
		return b, nil
	}
	start := time.Now()
	a := NewArchive()
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/sbin", "proc", "sys", "dev", "tmp", "run", "var", "etc", "root", "scenarios"} {
		a.Dir(d, 0o755)
	}
	a.Symlink("var/run", "/run")
	a.CharDev("dev/console", 0o600, 5, 1)
	a.CharDev("dev/null", 0o666, 1, 3)
	a.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	a.File("etc/group", 0o644, []byte("root:x:0:\n"))
	a.File("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n"))

	if err := a.HostBinary("bin/busybox", h.Busybox); err != nil {
		return nil, err
	}
	out, err := exec.Command(h.Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "bin/busybox" && !a.Has(p) {
			a.Symlink(p, "/bin/busybox")
		}
	}
	if err := a.HostBinary("usr/local/sbin/iproute-tc", h.Tc); err != nil {
		return nil, err
	}
	if err := a.HostBinary("usr/local/sbin/iproute-ip", h.IP); err != nil {
		return nil, err
	}
	mods, err := h.modulePaths(modules)
	if err != nil {
		return nil, err
	}
	var inImage []string
	for _, m := range mods {
		dst := filepath.Join("lib/modules", h.Release, strings.TrimPrefix(m, "kernel/"))
		a.HostFile(dst, filepath.Join(h.Modules, m), 0o644)
		inImage = append(inImage, "/"+dst)
	}
	img, err := a.Bytes()
	if err != nil {
		return nil, err
	}
	b := &Base{Host: h, Image: img, Modules: inImage, Took: time.Since(start)}
	baseCache[key] = b
	return b, nil
}

// Scenario is a shell script /init runs in the VM, as root, with PATH set and the
// modules loaded. Its output (stdout and stderr) and exit status are collected.
type Scenario struct {
	Name    string
	Script  string
	Timeout time.Duration // default 60s; the scenario is killed after it
}

// Options configure a boot.
type Options struct {
	Extra     *Archive // added over the base image: binaries, fixtures
	Scenarios []Scenario
	Timeout   time.Duration // the whole boot; default 4 minutes
	MemoryMB  int           // default 1024
	CPUs      int           // default 2
	Append    string        // extra kernel command line
	Env       map[string]string
	// Log, if set, receives the console output as it comes (e.g. a t.Log writer).
	Log io.Writer
}

// Result is what a boot printed.
type Result struct {
	Output    string // the whole console output, \r removed
	Scenarios []ScenarioResult
	Ready     bool // /init got as far as running scenarios
	Done      bool // and finished them all
	Took      time.Duration
	Boot      time.Duration // from qemu start to "@@vm ready"
}

// ScenarioResult is one scenario's output and exit status (-1 if it never ended).
type ScenarioResult struct {
	Name   string
	Output string
	RC     int
	Took   time.Duration
}

// Scenario returns the named scenario's result.
func (r *Result) Scenario(name string) (ScenarioResult, bool) {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return ScenarioResult{}, false
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Run boots the VM, runs the scenarios and returns their output. An error means the VM
// could not be started or did not finish; the Result holds whatever it printed.
func Run(ctx context.Context, b *Base, o Options) (*Result, error) {
	if o.Timeout == 0 {
		o.Timeout = 4 * time.Minute
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	extra := o.Extra
	if extra == nil {
		extra = NewArchive()
	}
	for i, s := range o.Scenarios {
		if !nameRE.MatchString(s.Name) {
			return nil, fmt.Errorf("scenario name %q: letters, digits, _ . - only", s.Name)
		}
		extra.File(fmt.Sprintf("scenarios/%02d-%s.sh", i, s.Name), 0o755, []byte(s.Script))
	}
	extra.File("init", 0o755, []byte(initScript(b, o)))
	tail, err := extra.Bytes()
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "chaoscron-vm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initrd.gz")
	// Two gzip members back to back: the kernel unpacks one archive after the other.
	if err := os.WriteFile(initrd, append(append([]byte{}, b.Image...), tail...), 0o600); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	unlock, err := lockMachine(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	cmd := exec.CommandContext(ctx, b.Host.Qemu,
		"-accel", "tcg", "-m", strconv.Itoa(o.MemoryMB), "-smp", strconv.Itoa(o.CPUs),
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", b.Host.Kernel, "-initrd", initrd,
		"-append", strings.TrimSpace("console=ttyS0 quiet panic=-1 "+o.Append))
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = nil
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	res := &Result{}
	var out bytes.Buffer
	var cur *ScenarioResult
	var curStart time.Time
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			out.WriteString(line + "\n")
			if o.Log != nil {
				fmt.Fprintln(o.Log, line)
			}
			// The firmware's terminal escapes may precede the first marker on its line.
			i := strings.Index(line, "@@vm ")
			if i < 0 {
				if cur != nil {
					cur.Output += line + "\n"
				}
				continue
			}
			switch f := strings.Fields(line[i+len("@@vm "):]); {
			case len(f) == 1 && f[0] == "ready":
				res.Ready, res.Boot = true, time.Since(start)
			case len(f) == 1 && f[0] == "done":
				res.Done = true
			case len(f) == 2 && f[0] == "begin":
				res.Scenarios = append(res.Scenarios, ScenarioResult{Name: f[1], RC: -1})
				cur, curStart = &res.Scenarios[len(res.Scenarios)-1], time.Now()
			case len(f) == 3 && f[0] == "end" && cur != nil:
				cur.RC, _ = strconv.Atoi(strings.TrimPrefix(f[2], "rc="))
				cur.Took = time.Since(curStart)
				cur = nil
			}
		}
		io.Copy(io.Discard, pr) // drain: a line too long must not block qemu
	}()
	werr := cmd.Wait()
	pw.Close()
	<-collected
	res.Output, res.Took = out.String(), time.Since(start)
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("VM did not finish within %s (ready=%v): %w", o.Timeout, res.Ready, ctx.Err())
	case werr != nil:
		return res, fmt.Errorf("qemu: %w", werr)
	case !res.Ready:
		return res, errors.New("VM stopped before /init ran its scenarios (see the output)")
	case !res.Done:
		return res, errors.New("VM stopped before the scenarios finished (see the output)")
	}
	return res, nil
}

func initScript(b *Base, o Options) string {
	var s strings.Builder
	s.WriteString(`#!/bin/sh
export PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
`)
	for k, v := range o.Env {
		fmt.Fprintf(&s, "export %s=%s\n", k, shellQuote(v))
	}
	s.WriteString(`mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
`)
	for _, m := range b.Modules {
		fmt.Fprintf(&s, "insmod %s || echo \"insmod %s failed\"\n", m, m)
	}
	s.WriteString(`ip link set lo up
echo "@@vm ready"
for f in /scenarios/*.sh; do
	[ -e "$f" ] || continue
	n=$(basename "$f" .sh); n=${n#*-}
	echo "@@vm begin $n"
	cd /tmp
`)
	s.WriteString("\tcase \"$n\" in\n")
	for _, sc := range o.Scenarios {
		t := sc.Timeout
		if t == 0 {
			t = 60 * time.Second
		}
		fmt.Fprintf(&s, "\t%s) secs=%d ;;\n", sc.Name, int(t.Seconds()+0.5))
	}
	s.WriteString("\t*) secs=60 ;;\n\tesac\n")
	s.WriteString(`	timeout -s KILL "$secs" sh "$f" 2>&1 </dev/null
	rc=$?
	echo ""
	echo "@@vm end $n rc=$rc"
done
echo "@@vm done"
sync
poweroff -f
`)
	return s.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// lockMachine takes the machine-wide VM lock, waiting for another test process's VM to end.
func lockMachine(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "chaoscron-vm.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("VM lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another test's VM: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

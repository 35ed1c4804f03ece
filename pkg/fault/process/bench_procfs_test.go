package process

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
	"github.com/shirou/gopsutil/v4/process"
)

// BenchmarkProcfs measures each read of the scan, done as the scan does it and with
// prometheus/procfs, over every process on the machine (about 2,000 more sleep children
// started in the setup), in turns in one run:
//
//	go test -run '^$' -bench Procfs -benchtime 20x -count 3 ./pkg/fault/process
func BenchmarkProcfs(b *testing.B) {
	const extra = 2000
	dir := b.TempDir()
	name := "cc" + unique(b)
	for range extra {
		namedSleep(b, dir, name)
	}
	_, port := helper(b, "listen")
	const proc = "/proc"
	fs, err := procfs.NewFS(proc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := psContext(context.Background(), proc)
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d processes", len(pids))
	each := func(b *testing.B, fn func(pid int)) {
		for b.Loop() {
			for _, p := range pids {
				fn(int(p))
			}
		}
	}
	buf := make([]byte, maxProtectCmdline)
	inodes, err := listeningInodes(proc, mustAtoi(b, port))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		ours, lib func(b *testing.B)
	}{
		{"pids", func(b *testing.B) {
			for b.Loop() {
				if _, err := process.PidsWithContext(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}, func(b *testing.B) {
			for b.Loop() {
				if _, err := fs.AllProcs(); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"stat", func(b *testing.B) { each(b, func(pid int) { _, _ = readStat(proc, pid) }) },
			func(b *testing.B) { each(b, func(pid int) { p, _ := fs.Proc(pid); _, _ = p.Stat() }) }},
		{"cmdline", func(b *testing.B) { each(b, func(pid int) { _, _, _ = readCmdline(proc, pid, buf) }) },
			func(b *testing.B) { each(b, func(pid int) { p, _ := fs.Proc(pid); _, _ = p.CmdLine() }) }},
		{"uids", func(b *testing.B) {
			each(b, func(pid int) { _, _ = (&process.Process{Pid: int32(pid)}).UidsWithContext(ctx) })
		}, func(b *testing.B) { each(b, func(pid int) { p, _ := fs.Proc(pid); _, _ = p.NewStatus() }) }},
		{"exe", func(b *testing.B) {
			each(b, func(pid int) { _, _ = (&process.Process{Pid: int32(pid)}).ExeWithContext(ctx) })
		}, func(b *testing.B) { each(b, func(pid int) { p, _ := fs.Proc(pid); _, _ = p.Executable() }) }},
		{"fd sockets", func(b *testing.B) { each(b, func(pid int) { _ = holdsSocket(proc, pid, inodes) }) },
			func(b *testing.B) {
				each(b, func(pid int) {
					p, err := fs.Proc(pid)
					if err != nil {
						return
					}
					targets, _ := p.FileDescriptorTargets()
					for _, t := range targets {
						if s, ok := strings.CutPrefix(t, "socket:["); ok {
							if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil && inodes[ino] {
								return
							}
						}
					}
				})
			}},
		{"net tcp", func(b *testing.B) {
			for b.Loop() {
				if ino, err := listeningInodes(proc, mustAtoi(b, port)); err != nil || len(ino) == 0 {
					b.Fatal(ino, err)
				}
			}
		}, func(b *testing.B) {
			want := uint64(mustAtoi(b, port))
			for b.Loop() {
				found := 0
				//lint:ignore SA1019 measured against ours: deprecated for sock_diag, which cannot read a fixture root
				for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
					lines, err := read()
					if err != nil {
						b.Fatal(err)
					}
					for _, l := range lines {
						if l.St == 10 && l.LocalPort == want {
							found++
						}
					}
				}
				if found == 0 {
					b.Fatal("listener not found")
				}
			}
		}},
	} {
		b.Run(tc.name+"/ours", tc.ours)
		b.Run(tc.name+"/procfs", tc.lib)
	}
}

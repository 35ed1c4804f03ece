package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

type fakeProc struct {
	pid, ppid int
	state     byte
	flags     uint64
	argv      []string
	exe       string
}

// fixture writes a procfs tree. Pid 2 is an ordinary process here, as it is in a pid
// namespace: "ppid 2" must not be mistaken for a kernel thread.
func fixture(t *testing.T, procs []fakeProc) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "proc")
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "stat"), "cpu  1 2 3 4\nbtime 1700000000\n")
	write(filepath.Join(root, "sys/kernel/random/boot_id"), "11111111-2222-3333-4444-555555555555\n")
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		comm := "?"
		if len(p.argv) > 0 {
			comm = filepath.Base(p.argv[0])
		}
		write(filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 %d 1000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			p.pid, comm, p.state, p.ppid, p.pid, p.pid, p.flags, 1000+p.pid))
		write(filepath.Join(dir, "comm"), comm+"\n")
		cmdline := ""
		for _, a := range p.argv {
			cmdline += a + "\x00"
		}
		write(filepath.Join(dir, "cmdline"), cmdline)
		if p.exe != "" {
			if err := os.Symlink(p.exe, filepath.Join(dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestScanFixture(t *testing.T) {
	agent := agentBinary(t)
	proc := fixture(t, []fakeProc{
		{pid: 1, state: 'S', argv: []string{"/sbin/init"}, exe: "/sbin/init"},
		{pid: 2, state: 'S', argv: []string{"/app/main", "serve"}, exe: "/app/main"},
		{pid: 3, ppid: 2, state: 'S', argv: []string{"/app/worker"}, exe: "/app/worker"},
		{pid: 4, ppid: 2, state: 'S', flags: pfKthread, argv: []string{"kworker"}},
		{pid: 9, ppid: 1, state: 'S', argv: []string{"/bin/sh", "-c", "chaoscron run"}, exe: "/bin/sh"},
		{pid: 10, ppid: 9, state: 'S', argv: []string{"/usr/local/bin/agent", "run"}, exe: "/usr/local/bin/agent"},
		{pid: 11, ppid: 10, state: 'S', argv: []string{"stress-ng", "--cpu", "1"}, exe: "/usr/bin/stress-ng"},
		{pid: 12, ppid: 11, state: 'R', argv: []string{"stress-ng-cpu"}, exe: "/usr/bin/stress-ng"},
		// 20 and 22 run the agent binary, under names of their own; 21 only calls itself chaoscron.
		{pid: 20, ppid: 1, state: 'S', argv: []string{"/opt/bin/agent-2", "run"}, exe: agent},
		{pid: 21, ppid: 1, state: 'S', argv: []string{"chaoscron", "recover"}, exe: sleepPath(t)},
		{pid: 22, ppid: 1, state: 'S', argv: []string{"/usr/local/bin/chaoscron-v2", "run"}, exe: agent},
		{pid: 30, ppid: 1, state: 'Z'},
		{pid: 31, ppid: 1, state: 'T', argv: []string{"/app/paused"}, exe: "/app/paused"},
	})
	env := fault.Env{Proc: proc, Sys: "/nonexistent", Self: 10}

	plan := func(t *testing.T, p fault.Params) (fault.Undo, error) {
		t.Helper()
		return newFault(t, p, env).Plan(context.Background(), "fx")
	}
	for _, tc := range []struct {
		action string
		want   string
	}{
		{"kill", "[2 3 21 31]"},
		{"stop", "[2 3 21]"}, // 31 was stopped by someone else
	} {
		t.Run("cmdline .* "+tc.action, func(t *testing.T) {
			raw, err := plan(t, fault.Params{"cmdline": ".*", "count": "all", "action": tc.action})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(targetPids(t, raw)); got != tc.want {
				t.Fatalf("targets %s, want %s", got, tc.want)
			}
			u := decode(t, raw)
			if u.BootID != "11111111-2222-3333-4444-555555555555" || u.Targets[0].StartTicks != 1002 || u.Targets[0].Cmdline != "/app/main serve" {
				t.Fatalf("plan %s: want boot id, start ticks and command line from the fixture", raw)
			}
		})
	}

	t.Run("every protection named", func(t *testing.T) {
		_, err := plan(t, fault.Params{"cmdline": "^/sbin/init|agent|chaoscron-v2|stress-ng|kworker|/bin/sh"})
		if err == nil {
			t.Fatal("Plan chose a protected process")
		}
		for _, want := range []string{
			"pid 1 (init): PID 1",
			"pid 4 (kworker): a kernel thread",
			"pid 9 (sh): an ancestor of the agent",
			"pid 10 (agent): the agent itself",
			"pid 11 (stress-ng): a descendant of the agent",
			"and 3 more", // 12 (descendant), 20 and 22 (chaoscron by their executable)
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	t.Run("other chaoscron processes", func(t *testing.T) {
		cfg, err := parseParams(fault.Params{"cmdline": "agent-2|^chaoscron|chaoscron-v2", "count": "all"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := newScanner(context.Background(), &cfg, env.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		cands, _, err := s.find()
		if err != nil {
			t.Fatal(err)
		}
		if len(cands) != 1 || cands[0].pid != 21 {
			t.Fatalf("candidates %v, want only pid 21, which is chaoscron by name only", cands)
		}
		want := "[pid 20 (agent-2): a chaoscron process pid 22 (chaoscron-v2): a chaoscron process]"
		if got := fmt.Sprint(s.protected); got != want {
			t.Fatalf("protected %s, want %s", got, want)
		}
		// One binary behind 20 and 22, one (sleep) behind 21: each parsed once.
		if len(s.agents) != 2 {
			t.Fatalf("%d executables looked at, want 2: %v", len(s.agents), s.agents)
		}
	})

	// A plan from anything but the agent's own procfs must never turn into signals: the pids
	// in it would name other processes, or none.
	t.Run("no signals from a fixture", func(t *testing.T) {
		f := newFault(t, fault.Params{"name": "main", "action": "stop"}, env)
		raw, err := f.Plan(context.Background(), "fx")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Inject(context.Background(), raw); err == nil || !strings.Contains(err.Error(), "not a procfs") {
			t.Fatalf("Inject on a fixture: %v, want a refusal", err)
		}
		if err := f.Revert(context.Background(), raw); err == nil || !strings.Contains(err.Error(), "not a procfs") {
			t.Fatalf("Revert on a fixture: %v, want a refusal", err)
		}
	})
}

func TestParseStat(t *testing.T) {
	// comm may hold spaces and parentheses.
	st, err := parseStat([]byte("42 (a) b (c) T 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 2 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'T' || st.ppid != 7 || st.flags != 4194560 || st.startTicks != 98765 || !st.stopped() {
		t.Fatalf("parseStat = %+v", st)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) S 1", "42 (x) S one 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 1"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestParseListening(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`
	got := map[uint64]bool{}
	parseListening([]byte(tcp), 8080, got)
	parseListening([]byte(tcp6), 8080, got)
	if len(got) != 2 || !got[1111] || !got[4444] {
		t.Fatalf("inodes listening on 8080: %v, want 1111 (v4) and 4444 (v6), not the established 2222", got)
	}
}

package journal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash and lock tests run a second process: the test binary itself, which
// TestMain turns into runChild when these variables are set.
const (
	childModeEnv = "CHAOSCRON_JOURNAL_TEST_CHILD"
	childPathEnv = "CHAOSCRON_JOURNAL_TEST_PATH"
)

// runChild is the child process. It prints the id of every run whose Begin returned,
// right after it returned, so the parent knows what was committed.
func runChild(mode, path string) int {
	j, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	begin := func() {
		r := newRecord("crash-" + mode)
		if err := j.Begin(&r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(r.ID) // one unbuffered write
	}
	switch mode {
	case "begin-exit": // exits without Close
		begin()
		os.Exit(3)
	case "begin-kill": // SIGKILLs itself
		begin()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	case "begin-loop": // Begins until the parent kills it
		for {
			begin()
		}
	case "hold": // holds the journal open until stdin closes
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := j.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown child mode", mode)
	return 2
}

func childCmd(mode, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// committedIDs parses the ids a child printed; a last line cut short by the kill is
// not a committed run.
func committedIDs(t *testing.T, out string) []uint64 {
	t.Helper()
	var ids []uint64
	for line := range strings.Lines(out) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		id, err := strconv.ParseUint(strings.TrimSpace(line), 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestCrashAfterBeginKeepsRecord(t *testing.T) {
	cases := []struct {
		mode string
		dies func(*exec.ExitError) bool
	}{
		{"begin-exit", func(e *exec.ExitError) bool { return e.ExitCode() == 3 }},
		{"begin-kill", func(e *exec.ExitError) bool {
			ws, ok := e.Sys().(syscall.WaitStatus)
			return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			out, err := childCmd(c.mode, path).Output()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !c.dies(exit) {
				t.Fatalf("child ended with %v, output %q", err, out)
			}
			committed := committedIDs(t, string(out))
			if len(committed) != 1 {
				t.Fatalf("child committed %v", committed)
			}
			j, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			r, err := j.Get(committed[0])
			if err != nil {
				t.Fatalf("run committed before the crash is gone: %v", err)
			}
			if r.Experiment != "crash-"+c.mode || !r.Open() {
				t.Errorf("run after crash: %+v", r)
			}
			open, err := j.OpenRuns()
			if err != nil || len(open) != 1 || open[0].ID != committed[0] {
				t.Errorf("recovery would see %v, %v", ids(open), err)
			}
		})
	}
}

// TestKillDuringBegins SIGKILLs a process that commits runs as fast as it can, so the
// kill lands at an arbitrary point of a commit. Every run whose Begin had returned must
// be there, and the journal must open cleanly.
func TestKillDuringBegins(t *testing.T) {
	for round := 0; round < 3; round++ {
		path := filepath.Join(t.TempDir(), "journal.db")
		cmd := childCmd("begin-loop", path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(stdout)
		var out strings.Builder
		for i := 0; i < 50+round*37; i++ { // let it commit a while, a different while each round
			line, err := br.ReadString('\n')
			out.WriteString(line)
			if err != nil {
				t.Fatalf("child stopped early: %v", err)
			}
		}
		_ = cmd.Process.Kill()
		rest, _ := io.ReadAll(br)
		out.Write(rest)
		_ = cmd.Wait()

		committed := committedIDs(t, out.String())
		j, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: journal after SIGKILL does not open: %v", round, err)
		}
		open, err := j.OpenRuns()
		if err != nil {
			t.Fatal(err)
		}
		inIndex := map[uint64]bool{}
		for _, r := range open {
			inIndex[r.ID] = true
		}
		for _, id := range committed {
			if _, err := j.Get(id); err != nil || !inIndex[id] {
				t.Errorf("round %d: committed run %d lost (get: %v, in open index: %v)", round, id, err, inIndex[id])
			}
		}
		// A run being committed at the kill is either wholly there or wholly absent.
		if len(open) < len(committed) || len(open) > len(committed)+1 {
			t.Errorf("round %d: %d runs committed, %d in the journal", round, len(committed), len(open))
		}
		t.Logf("round %d: %d runs committed before SIGKILL, %d found", round, len(committed), len(open))
		j.Close()
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	cmd := childCmd("hold", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q %v", line, err)
	}

	for _, ro := range []bool{false, true} {
		start := time.Now()
		j, err := Open(path, Options{ReadOnly: ro, Timeout: 200 * time.Millisecond})
		took := time.Since(start)
		if err == nil {
			j.Close()
			t.Fatalf("read-only=%v: opened a journal another process holds", ro)
		}
		if !errors.Is(err, ErrLocked) {
			t.Errorf("read-only=%v: %v, want ErrLocked", ro, err)
		}
		for _, want := range []string{path, "agent"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("read-only=%v: message %q does not mention %q", ro, err, want)
			}
		}
		if took < 100*time.Millisecond || took > 2*time.Second {
			t.Errorf("read-only=%v: gave up after %v, want about the 200ms timeout", ro, took)
		}
	}

	// Once the holder lets go, the journal opens.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	j, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("after the holder exited: %v", err)
	}
	j.Close()
}

// TestLockedWithinProcess: bbolt's flock is per open file, so a second Open in the same
// process is refused too (an agent that opened its journal twice would find out).
func TestLockedWithinProcess(t *testing.T) {
	j := openTemp(t, Options{})
	for _, ro := range []bool{false, true} {
		k, err := Open(j.Path(), Options{ReadOnly: ro, Timeout: 100 * time.Millisecond})
		if !errors.Is(err, ErrLocked) {
			if k != nil {
				k.Close()
			}
			t.Errorf("read-only=%v: second open in the same process: %v, want ErrLocked", ro, err)
		}
	}
	// Readers share.
	j.Close()
	a, err := Open(j.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(j.Path(), Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	b.Close()
}

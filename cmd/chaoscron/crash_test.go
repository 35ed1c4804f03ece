package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Crash recovery for the faults not covered in main_test.go. The network fault's crash tests
// run the real binary in the netem VM (pkg/fault/network); the pod simulation in deploy/ does
// process stop inside fresh pid and network namespaces.

func TestCrashMemoryHog(t *testing.T) {
	// The hog is the agent's own memory: it dies with it. Present = the agent's RSS is up by
	// the hog; after SIGKILL nothing may be left, and the restarted agent closes the run.
	crashTest(t, "{type: memory, size: 64MiB}", false, func(dir string, a *agent) bool {
		if a.cmd.ProcessState == nil {
			return strings.Contains(a.log.String(), `"msg":"run active"`) && rssKiB(a.cmd.Process.Pid) > 64*1024
		}
		return len(processesOf(bin)) > 0
	})
}

func TestCrashProcessStop(t *testing.T) {
	// A stopped process outlives the agent: it must stay stopped until the next agent resumes it.
	target := exec.Command("sleep", "86399")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Process.Kill(); _ = target.Wait() })
	pid := target.Process.Pid
	crashTest(t, `{type: process, action: stop, cmdline: "^sleep 86399$", count: all}`, true, func(string, *agent) bool {
		return procState(pid) == "T"
	})
	if s := procState(pid); s != "S" && s != "R" {
		t.Fatalf("target state %q after recovery, want running/sleeping", s)
	}
}

// rssKiB is a process's resident set in KiB.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	return 0
}

// procState is the one-letter state of a process (R, S, T, Z, …), "" if gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

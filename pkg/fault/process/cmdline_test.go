package process

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// TestLongCmdline: a command line of 1.5 MB (twelve arguments of 128,000 letters, then
// "needle") is matched by its first 4 KiB, as pkill -f does, so that a pattern at Go's repeat
// limit costs milliseconds rather than seconds per process; agent.protect sees up to 128 KiB.
// Only Plan runs: nothing is signalled.
func TestLongCmdline(t *testing.T) {
	long := make([]string, 0, 13)
	for range 12 {
		long = append(long, strings.Repeat("a", 128000))
	}
	target, _ := helper(t, "ignore-term", append(long, "needle")...)
	pidfile := pidfileOf(t, target)
	env := agentEnv(t)

	for _, tc := range []struct {
		desc    string
		cmdline string
		matches bool
	}{
		{"within the first 4 KiB", `-test\.run=\^\$ a{100}`, true},
		{"beyond the first 4 KiB", `needle`, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := newFault(t, fault.Params{"pidfile": pidfile, "cmdline": tc.cmdline}, env).Plan(context.Background(), "r")
			if matched := err == nil; matched != tc.matches {
				t.Fatalf("Plan: %v; want a match: %v", err, tc.matches)
			}
		})
	}

	t.Run("a pattern at the repeat limit", func(t *testing.T) {
		// Before the bound this one Plan took 9.6 s on an idle machine (about a minute on a
		// loaded one); with it, tens of milliseconds. The margin is wide: only the seconds
		// of a scan over the whole command line fail it.
		f := newFault(t, fault.Params{"pidfile": pidfile, "cmdline": `[a-z]{1,1000}x`}, env)
		begin := time.Now()
		_, err := f.Plan(context.Background(), "r")
		took := time.Since(begin)
		t.Logf("Plan over a %d-byte command line: %v (%v)", 12*128001+len("needle"), took, err)
		if err != nil && !strings.Contains(err.Error(), "no process matched") {
			t.Fatal(err)
		}
		if took > 3*time.Second {
			t.Fatalf("Plan took %v, want well under 3 s", took)
		}
	})

	t.Run("agent.protect sees beyond 4 KiB", func(t *testing.T) {
		java, _ := helper(t, "ignore-term", strings.Repeat("c", 8000), "com.example.CriticalMain")
		penv := env
		penv.Protect = []*regexp.Regexp{regexp.MustCompile(`CriticalMain`)}
		_, err := newFault(t, fault.Params{"pidfile": pidfileOf(t, java), "cmdline": `-test\.run`}, penv).Plan(context.Background(), "r")
		if err == nil || !strings.Contains(err.Error(), `protected by agent.protect "CriticalMain"`) {
			t.Fatalf("Plan: %v; want no match, naming the protected process", err)
		}
	})
}

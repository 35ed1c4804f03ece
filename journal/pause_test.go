package journal

import (
	"path/filepath"
	"testing"
	"time"
)

// TestPausePersists: pause flags survive a reopen, show in Stats, and resume clears them.
func TestPausePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	steps := []struct {
		name   string
		paused bool
		want   map[string]Pause
	}{
		{"a", true, map[string]Pause{"a": {"tripped", t0}}},
		{"b", true, map[string]Pause{"a": {"tripped", t0}, "b": {"tripped", t0}}},
		{"a", false, map[string]Pause{"b": {"tripped", t0}}},
		{"zzz", false, map[string]Pause{"b": {"tripped", t0}}},
		{"b", false, map[string]Pause{}},
	}
	for _, s := range steps {
		j, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := j.SetPaused(s.name, s.paused, "tripped", t0); err != nil {
			t.Fatal(err)
		}
		j.Close()
		if j, err = Open(path, Options{ReadOnly: true}); err != nil {
			t.Fatal(err)
		}
		got, err := j.Paused()
		if err != nil {
			t.Fatal(err)
		}
		st, err := j.Stats()
		j.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(s.want) || len(st.Paused) != len(s.want) {
			t.Fatalf("after %s=%v: paused %v, stats %v, want %v", s.name, s.paused, got, st.Paused, s.want)
		}
		for n, p := range s.want {
			if g := got[n]; g.Reason != p.Reason || !g.At.Equal(p.At) {
				t.Errorf("after %s=%v: %s = %+v, want %+v", s.name, s.paused, n, g, p)
			}
			if _, ok := st.Paused[n]; !ok {
				t.Errorf("stats misses %s", n)
			}
		}
	}
}

package disk

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

func TestRegistered(t *testing.T) {
	if !fault.Known("disk") {
		t.Fatal(`fault type "disk" is not registered`)
	}
}

func TestNewValidation(t *testing.T) {
	type want struct{ key, msg string }
	for _, tc := range []struct {
		name   string
		params fault.Params
		want   []want // nil = valid
	}{
		{"size", fault.Params{"path": "/data", "size": "1GiB"}, nil},
		{"size as number", fault.Params{"path": "/data", "size": 4096}, nil},
		{"percent", fault.Params{"path": "/data", "percent": "90%"}, nil},
		{"all set", fault.Params{"path": "/data/", "percent": 90, "reserve": "0", "method": "write"}, nil},
		{"relative path", fault.Params{"path": "data", "size": "1GiB"}, []want{{"path", "absolute"}}},
		{"no path", fault.Params{"size": "1GiB"}, []want{{"path", "required"}}},
		{"path not a string", fault.Params{"path": 3, "size": "1GiB"}, []want{{"path", "expected a string"}}},
		{"size and percent", fault.Params{"path": "/data", "size": "1GiB", "percent": 50}, []want{{"percent", "not both"}}},
		{"neither size nor percent", fault.Params{"path": "/data"}, []want{{"size", "one of size or percent"}}},
		{"percent above 100", fault.Params{"path": "/data", "percent": 150}, []want{{"percent", "above 100%"}}},
		{"percent zero", fault.Params{"path": "/data", "percent": "0%"}, []want{{"percent", "above 0%"}}},
		{"size zero", fault.Params{"path": "/data", "size": 0}, []want{{"size", "above 0"}}},
		{"size lots", fault.Params{"path": "/data", "size": "lots"}, []want{{"size", "not a size"}}},
		{"size negative", fault.Params{"path": "/data", "size": "-1GiB"}, []want{{"size", "negative"}}},
		{"reserve bad", fault.Params{"path": "/data", "size": "1GiB", "reserve": "some"}, []want{{"reserve", "not a size"}}},
		{"method unknown", fault.Params{"path": "/data", "size": "1GiB", "method": "dd"}, []want{{"method", "not a method"}}},
		{"unknown param", fault.Params{"path": "/data", "size": "1GiB", "file": "x"}, []want{{"file", "unknown key"}}},
		{"everything wrong", fault.Params{"path": "rel", "size": "lots", "method": "dd"},
			[]want{{"size", "not a size"}, {"path", "absolute"}, {"method", "not a method"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := fault.New("disk", tc.params, fault.Env{})
			if tc.want == nil {
				if err != nil || f == nil {
					t.Fatalf("New(%v) = %v, %v; want a fault", tc.params, f, err)
				}
				return
			}
			got := fault.FieldErrors(err)
			if len(got) != len(tc.want) {
				t.Fatalf("New(%v) errors = %q; want %d errors %v", tc.params, err, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if got[i].Key != w.key || !strings.Contains(got[i].Msg, w.msg) {
					t.Errorf("error %d = %q; want key %q with %q", i, got[i], w.key, w.msg)
				}
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for params, want := range map[string]string{
		`{"path":"/data","size":"1GiB"}`:                     "fill /data with 1GiB (fallocate, leaving at least 64MiB available)",
		`{"path":"/data/","percent":90,"method":"write"}`:    "fill /data until 90% used (write, leaving at least 64MiB available)",
		`{"path":"/d","size":"1MiB","reserve":"1GiB"}`:       "fill /d with 1MiB (fallocate, leaving at least 1GiB available)",
		`{"path":"/d","percent":"12.5%","reserve":"512KiB"}`: "fill /d until 12.5% used (fallocate, leaving at least 512KiB available)",
	} {
		var p fault.Params
		if err := json.Unmarshal([]byte(params), &p); err != nil {
			t.Fatal(err)
		}
		if got := newFault(t, p).Describe(); got != want {
			t.Errorf("Describe(%s) = %q; want %q", params, got, want)
		}
	}
}

func TestPlan(t *testing.T) {
	dir := t.TempDir()
	f := newFault(t, fault.Params{"path": dir, "size": "1MiB", "reserve": 0})
	raw, err := f.Plan(t.Context(), "r-1")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	want := undo{Run: "r-1", File: filepath.Join(dir, ".chaoscron-fill-r-1"), Bytes: 1 << 20, Requested: 1 << 20, Dev: st.Dev, DirIno: st.Ino, Method: "fallocate"}
	if got := decode(t, raw); got != want {
		t.Fatalf("Plan = %+v; want %+v", got, want)
	}
	if names := list(t, dir); len(names) != 0 {
		t.Fatalf("Plan created %v", names)
	}
}

func TestPlanRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, run string
	}{
		{"run with slash", dir, "../x"},
		{"empty run", dir, ""},
		{"run with space", dir, "a b"},
		{"run too long", dir, strings.Repeat("r", 129)},
		{"missing path", filepath.Join(dir, "missing"), "r1"},
		{"path is a file", file, "r1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFault(t, fault.Params{"path": tc.path, "size": "1MiB", "reserve": 0})
			if u, err := f.Plan(t.Context(), tc.run); err == nil {
				t.Fatalf("Plan(%q) in %s = %s; want an error", tc.run, tc.path, u)
			}
		})
	}
}

func TestRevertRejectsUndoNamingOtherFiles(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFault(t, fault.Params{"path": dir, "size": "1MiB"})
	for _, u := range []string{
		`{"run":"r1","file":"` + victim + `"}`,
		`{"run":"victim","file":"` + victim + `"}`,
		`{"run":"../victim","file":"` + dir + `/.chaoscron-fill-../victim"}`,
		`{"run":"r1","file":"` + dir + `/sub/../.chaoscron-fill-r1"}`,
		`{"run":"r1","file":".chaoscron-fill-r1"}`,
		`{"file":"` + victim + `"}`,
		`not json`,
	} {
		if err := f.Revert(t.Context(), fault.Undo(u)); err == nil {
			t.Errorf("Revert(%s) succeeded; want an error", u)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
		t.Fatalf("victim = %q, %v; want it untouched", b, err)
	}
	if err := f.Revert(t.Context(), nil); err != nil {
		t.Fatalf("Revert(nil) = %v; want nil", err)
	}
}

// --- helpers shared by the tests in this package

func newFault(t testing.TB, p fault.Params) *Fault {
	t.Helper()
	ff, err := New(p, fault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return ff.(*Fault)
}

func decode(t testing.TB, raw fault.Undo) undo {
	t.Helper()
	var u undo
	if err := json.Unmarshal(raw, &u); err != nil {
		t.Fatalf("undo %s: %v", raw, err)
	}
	return u
}

// inject plans and injects run, and makes sure the file is gone when the test ends.
func inject(t testing.TB, f *Fault, run string) (plan, got fault.Undo) {
	t.Helper()
	plan, err := f.Plan(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Revert(context.Background(), plan) })
	got, err = f.Inject(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	return plan, got
}

func revert(t testing.TB, f *Fault, u fault.Undo) {
	t.Helper()
	if err := f.Revert(t.Context(), u); err != nil {
		t.Fatalf("Revert(%s): %v", u, err)
	}
}

func list(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// space returns a filesystem's total and available bytes.
func statfs(t testing.TB, dir string) (total, avail int64) {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	return space(fs)
}

func TestSize2Fill(t *testing.T) {
	const bs = 4096
	// 1000 blocks, 100 of them reserved for root (free but not available), 300 used.
	fs := unix.Statfs_t{Bsize: bs, Frsize: bs, Blocks: 1000, Bfree: 700, Bavail: 600}
	for _, tc := range []struct {
		name    string
		params  fault.Params
		bytes   int64
		clamped bool
	}{
		{"size", fault.Params{"size": 100 * bs, "reserve": 0}, 100 * bs, false},
		{"size into the reserve", fault.Params{"size": 590 * bs, "reserve": 20 * bs}, 580 * bs, true},
		{"size beyond available", fault.Params{"size": 650 * bs, "reserve": 0}, 600 * bs, true},
		// used = 1 − avail/total = 40%: the root reserve counts as used.
		{"percent", fault.Params{"percent": 90, "reserve": 0}, 500 * bs, false},
		{"percent 100", fault.Params{"percent": 100, "reserve": 10 * bs}, 590 * bs, true},
		{"percent below usage", fault.Params{"percent": 30, "reserve": 0}, 0, false},
		{"no room above reserve", fault.Params{"size": bs, "reserve": 600 * bs}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["path"] = "/data"
			var u undo
			newFault(t, tc.params).size2fill(&u, fs)
			if u.Bytes != tc.bytes || u.Clamped != tc.clamped {
				t.Fatalf("bytes %d (%d blocks), clamped %v; want %d (%d blocks), clamped %v",
					u.Bytes, u.Bytes/bs, u.Clamped, tc.bytes, tc.bytes/bs, tc.clamped)
			}
		})
	}
}

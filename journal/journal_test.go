package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOpenCreatesPrivateFile(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "var", "chaoscron", "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Path() != path {
		t.Errorf("Path() = %q, want %q", j.Path(), path)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(root, "var"), 0o700},
		{filepath.Join(root, "var", "chaoscron"), 0o700},
		{path, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the journal (no temporary files left)", len(entries))
	}
	s, err := j.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Schema != SchemaVersion || s.Runs != 0 || s.Open != 0 || s.Halted {
		t.Errorf("fresh journal stats = %+v", s)
	}
}

func TestOpenRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	stale := filepath.Join(dir, ".journal.db.new-123")
	fresh := filepath.Join(dir, ".journal.db.new-456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half a journal"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file (maybe another process's) was removed: %v", err)
	}
}

func TestBeginGetRoundTrip(t *testing.T) {
	j := openTemp(t, Options{})
	r := newRecord("api-latency")
	r.ID = 777 // ignored: Begin assigns
	r.DryRun = true
	r.Reason = "why not"
	if err := j.Begin(&r); err != nil {
		t.Fatal(err)
	}
	if r.ID != 1 {
		t.Fatalf("first id = %d, want 1", r.ID)
	}
	got, err := j.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("Get = %+v\nwant  %+v", got, r)
	}
	// The stored form is the documented JSON record.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id":1`, `"experiment":"api-latency"`, `"status":"pending"`, `"cleanup":"pending"`, `"dry_run":true`, `"agent":{"host":"node-1"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	if bytes.Contains(b, []byte("ended_at")) {
		t.Errorf("JSON %s carries a zero ended_at", b)
	}
}

func TestIDsIncreaseAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	var got []uint64
	for round := 0; round < 2; round++ {
		j, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			r := newRecord("e")
			if err := j.Begin(&r); err != nil {
				t.Fatal(err)
			}
			got = append(got, r.ID)
		}
		// A refused Begin must not use up an id.
		bad := newRecord("e")
		bad.Cleanup = ""
		if err := j.Begin(&bad); err == nil {
			t.Fatal("Begin accepted a record without cleanup state")
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if want := []uint64{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
}

// TestOpenIndexFollowsLifecycle drives runs through the lifecycle of the design and
// checks after every step that the open index holds exactly the runs with something
// left to reverse, also after a reopen.
func TestOpenIndexFollowsLifecycle(t *testing.T) {
	type step struct {
		status  Status
		cleanup Cleanup
		open    bool
	}
	cases := []struct {
		name  string
		steps []step // the first is Begin, the rest Updates
	}{
		{"succeeded", []step{{Pending, CleanupPending, true}, {Active, CleanupPending, true}, {Succeeded, CleanupDone, false}}},
		{"inject failed", []step{{Pending, CleanupPending, true}, {Failed, CleanupDone, false}}},
		{"aborted revert failed stays open", []step{{Pending, CleanupPending, true}, {Active, CleanupPending, true}, {Aborted, CleanupFailed, true}}},
		{"revert failed then recovered", []step{{Pending, CleanupPending, true}, {Active, CleanupPending, true}, {Aborted, CleanupFailed, true}, {Aborted, CleanupRecovered, false}}},
		{"crashed then recovered", []step{{Pending, CleanupPending, true}, {Aborted, CleanupRecovered, false}}},
		{"skipped", []step{{Skipped, CleanupNone, false}}},
		{"dry run", []step{{Pending, CleanupNone, false}, {Succeeded, CleanupNone, false}}},
		{"closed run reopened", []step{{Succeeded, CleanupDone, false}, {Aborted, CleanupFailed, true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			j, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { j.Close() }()
			// A closed neighbour must never show up.
			other := newRecord("other")
			other.Status, other.Cleanup = Succeeded, CleanupDone
			if err := j.Begin(&other); err != nil {
				t.Fatal(err)
			}
			var id uint64
			check := func(i int, s step) {
				t.Helper()
				open, err := j.OpenRuns()
				if err != nil {
					t.Fatal(err)
				}
				want := []uint64{}
				if s.open {
					want = []uint64{id}
				}
				if !slices.Equal(ids(open), want) {
					t.Errorf("step %d (%s/%s): open runs %v, want %v", i, s.status, s.cleanup, ids(open), want)
				}
				if n, err := j.OpenCount(); err != nil || n != len(want) {
					t.Errorf("step %d (%s/%s): OpenCount = %d, %v; want %d", i, s.status, s.cleanup, n, err, len(want))
				}
				if s.open && (open[0].Status != s.status || open[0].Cleanup != s.cleanup) {
					t.Errorf("step %d: open run is %s/%s", i, open[0].Status, open[0].Cleanup)
				}
			}
			for i, s := range c.steps {
				if i == 0 {
					r := newRecord("e")
					r.Status, r.Cleanup = s.status, s.cleanup
					if err := j.Begin(&r); err != nil {
						t.Fatal(err)
					}
					id = r.ID
				} else {
					got, err := j.Update(id, func(r *Record) error {
						r.Status, r.Cleanup = s.status, s.cleanup
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if got.Status != s.status || got.Cleanup != s.cleanup || got.ID != id {
						t.Errorf("Update returned %d %s/%s", got.ID, got.Status, got.Cleanup)
					}
				}
				check(i, s)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if j, err = Open(path, Options{}); err != nil {
				t.Fatal(err)
			}
			check(len(c.steps)-1, c.steps[len(c.steps)-1])
		})
	}
}

func TestUpdateAbortsOnError(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name string
		id   uint64 // 0: the run begun by the test
		fn   func(*Record) error
		want error // errors.Is target; nil: any error
	}{
		{"fn error", 0, func(r *Record) error { r.Status, r.Cleanup = Succeeded, CleanupDone; return errBoom }, errBoom},
		{"missing run", 99, func(r *Record) error { return nil }, ErrNotFound},
		{"id changed", 0, func(r *Record) error { r.ID = 5; r.Cleanup = CleanupDone; return nil }, nil},
		{"unknown status", 0, func(r *Record) error { r.Status = "exploded"; r.Cleanup = CleanupDone; return nil }, nil},
		{"cleanup cleared", 0, func(r *Record) error { r.Cleanup = ""; return nil }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := openTemp(t, Options{})
			r := newRecord("e")
			if err := j.Begin(&r); err != nil {
				t.Fatal(err)
			}
			id := c.id
			if id == 0 {
				id = r.ID
			}
			got, err := j.Update(id, c.fn)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Update error = %v, want %v", err, c.want)
			}
			if !reflect.DeepEqual(got, Record{}) {
				t.Errorf("failed Update returned %+v", got)
			}
			after, err := j.Get(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after, r) {
				t.Errorf("record changed by an aborted Update: %+v", after)
			}
			open, err := j.OpenRuns()
			if err != nil || !slices.Equal(ids(open), []uint64{r.ID}) {
				t.Errorf("open runs after aborted Update: %v, %v", ids(open), err)
			}
		})
	}
}

func TestUpdatePanicRollsBackAndPropagates(t *testing.T) {
	j := openTemp(t, Options{})
	r := newRecord("e")
	if err := j.Begin(&r); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if p := recover(); p != "caller bug" {
				t.Errorf("recovered %v, want the caller's panic", p)
			}
		}()
		_, _ = j.Update(r.ID, func(rec *Record) error {
			rec.Cleanup = CleanupDone
			panic("caller bug")
		})
	}()
	// The transaction was rolled back and its lock released: the journal still works
	// and is not marked damaged.
	got, err := j.Get(r.ID)
	if err != nil || got.Cleanup != CleanupPending {
		t.Fatalf("after panic: %+v, %v", got, err)
	}
	r2 := newRecord("e")
	if err := j.Begin(&r2); err != nil {
		t.Fatalf("Begin after a panicking Update: %v", err)
	}
}

func TestGetMissing(t *testing.T) {
	j := openTemp(t, Options{})
	if _, err := j.Get(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get on empty journal: %v, want ErrNotFound", err)
	}
}

func TestHaltedPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	steps := []struct {
		halted bool
		reason string
		at     time.Time
	}{
		{true, "incident INC-42", t0},
		{false, "resumed by sre", t0.Add(time.Hour)},
	}
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, reason, at, err := j.Halted(); err != nil || h || reason != "" || !at.IsZero() {
		t.Errorf("new journal: halted=%v %q %v %v", h, reason, at, err)
	}
	for _, s := range steps {
		if err := j.SetHalted(s.halted, s.reason, s.at); err != nil {
			t.Fatal(err)
		}
		j.Close()
		if j, err = Open(path, Options{}); err != nil {
			t.Fatal(err)
		}
		h, reason, at, err := j.Halted()
		if err != nil || h != s.halted || reason != s.reason || !at.Equal(s.at) {
			t.Errorf("after reopen: halted=%v %q %v %v, want %v %q %v", h, reason, at, err, s.halted, s.reason, s.at)
		}
	}
	j.Close()
}

func TestReopenKeepsCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecord("e")
	if err := j.Begin(&r); err != nil {
		t.Fatal(err)
	}
	updated, err := j.Update(r.ID, func(r *Record) error {
		r.Status = Active
		r.AppliedAt = t0.Add(2 * time.Second)
		r.Undo = json.RawMessage(`{"handle":"8001:0"}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	got, err := j.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, updated) {
		t.Errorf("after reopen %+v\nwant %+v", got, updated)
	}
}

func TestWritesNeedReadWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	r := newRecord("e")
	if err := ro.Begin(&r); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Begin on a read-only journal: %v", err)
	}
	if err := ro.SetHalted(true, "x", t0); err == nil {
		t.Error("SetHalted on a read-only journal succeeded")
	}
}

func TestPutReplacesAndKeepsTheIndex(t *testing.T) {
	j := openTemp(t, Options{})
	r := newRecord("put")
	if err := j.Begin(&r); err != nil {
		t.Fatal(err)
	}
	r.Status, r.AppliedAt = Active, t0.Add(2*time.Second)
	if err := j.Put(&r); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Get(r.ID); err != nil || got.Status != Active || !got.AppliedAt.Equal(r.AppliedAt) {
		t.Fatalf("after Put: %+v, %v", got, err)
	}
	if n, _ := j.OpenCount(); n != 1 {
		t.Fatalf("open index holds %d runs, want 1", n)
	}
	r.Status, r.Cleanup, r.EndedAt = Succeeded, CleanupDone, t0.Add(time.Minute)
	if err := j.Put(&r); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.OpenCount(); n != 0 {
		t.Fatalf("open index holds %d runs after the run closed, want 0", n)
	}

	missing := newRecord("never begun")
	missing.ID = r.ID + 1
	if err := j.Put(&missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Put of a run never begun = %v, want ErrNotFound", err)
	}
	if _, err := j.Get(missing.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Put created run %d", missing.ID)
	}
	bad := r
	bad.Cleanup = ""
	if err := j.Put(&bad); err == nil {
		t.Fatal("Put took a record without a cleanup state")
	}
	if got, _ := j.Get(r.ID); got.Cleanup != CleanupDone {
		t.Fatalf("refused Put changed the run: cleanup %q", got.Cleanup)
	}
}

package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestMain lets the test binary double as the child process of the crash and lock tests
// (see process_test.go).
func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(runChild(mode, os.Getenv(childPathEnv)))
	}
	code := m.Run()
	cleanupBenchJournals()
	os.Exit(code)
}

// t0 is a fixed instant the tests build times from.
var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// newRecord is a run as the runner writes it at intent time.
func newRecord(experiment string) Record {
	return Record{
		Experiment:  experiment,
		Fault:       "network",
		Params:      json.RawMessage(`{"interfaces":["eth0"],"delay":"200ms","loss":"1%"}`),
		Trigger:     "schedule",
		ScheduledAt: t0,
		StartedAt:   t0.Add(time.Second),
		PlannedEnd:  t0.Add(46 * time.Second),
		Status:      Pending,
		Cleanup:     CleanupPending,
		Undo:        json.RawMessage(`{"netns":"/proc/1/ns/net","interface":"eth0","handle":"1:0","kind":"netem"}`),
		Agent:       Agent{Host: "node-1", PID: 4242, Instance: "a1b2c3", Version: "0.1.0"},
	}
}

// openTemp opens a fresh journal in a test directory.
func openTemp(t testing.TB, opt Options) *Journal {
	t.Helper()
	j, err := Open(filepath.Join(t.TempDir(), "journal.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// bulkLoad appends n runs straight through bbolt, many per transaction, stored exactly
// as Begin stores them; every openEvery-th run (if openEvery > 0) is left open. It
// makes big journals quick to build for tests and benchmarks.
func bulkLoad(t testing.TB, j *Journal, n, openEvery int, at func(i int) time.Time) {
	t.Helper()
	const perTx = 20000
	for done := 0; done < n; {
		err := j.db.Update(func(tx *bbolt.Tx) error {
			runs := tx.Bucket(bucketRuns)
			runs.FillPercent = 0.9 // appends only: pack the pages
			for i := 0; i < perTx && done < n; i, done = i+1, done+1 {
				r := newRecord(fmt.Sprintf("exp-%d", done%7))
				r.Status, r.Cleanup = Succeeded, CleanupDone
				if openEvery > 0 && done%openEvery == 0 {
					r.Status, r.Cleanup = Active, CleanupPending
				}
				if at != nil {
					r.ScheduledAt = at(done)
					r.StartedAt = r.ScheduledAt.Add(time.Second)
					r.EndedAt = r.ScheduledAt.Add(46 * time.Second)
				}
				id, err := runs.NextSequence()
				if err != nil {
					return err
				}
				r.ID = id
				if _, err := put(tx, &r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Written past commit, so the open count is read from the file again.
	if err := j.count(); err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func ids(rs []Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// damageRecords overwrites the stored runs from..to (inclusive) with bytes that are not
// JSON, behind the journal's back.
func damageRecords(t testing.TB, j *Journal, from, to uint64) {
	t.Helper()
	err := j.db.Update(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		for id := from; id <= to; id++ {
			if err := runs.Put(idKey(id), []byte("{damaged")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

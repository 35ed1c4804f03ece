package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// damageRun flips one bit in the middle of run id's stored value, behind the journal's back.
func damageRun(t testing.TB, path string, id uint64) {
	t.Helper()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		v := bytes.Clone(tx.Bucket(bucketRuns).Get(idKey(id)))
		v[len(v)/2] ^= 0x04
		return tx.Bucket(bucketRuns).Put(idKey(id), v)
	})
}

// TestDamagedRecordsSkipped: damage inside closed runs is found by Open, and every read
// skips it, names the file and the runs, and returns the rest.
func TestDamagedRecordsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	writeJournal(t, path, 30) // runs 1, 11 and 21 open
	for _, id := range []uint64{4, 17, 30} {
		damageRun(t, path, id)
	}
	want := []uint64{4, 17, 30}
	for _, ro := range []bool{true, false} { // read-only first: the writable one prunes
		j, err := Open(path, Options{ReadOnly: ro})
		if err != nil {
			t.Fatalf("read-only=%v: %v", ro, err)
		}
		if got := j.Damaged(); !slices.Equal(got, want) {
			t.Errorf("read-only=%v: Damaged() = %v, want %v", ro, got, want)
		}
		checkDamaged := func(what string, err error) {
			t.Helper()
			var de *DamagedError
			if !errors.As(err, &de) || !slices.Equal(slices.Sorted(slices.Values(de.Runs)), want) || de.Path != path {
				t.Errorf("read-only=%v: %s: %v, want a DamagedError for %v in %s", ro, what, err, want, path)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "run 17: damaged record: checksum mismatch") {
				t.Errorf("read-only=%v: %s: %q", ro, what, err)
			}
		}
		recs, err := j.List(Filter{})
		checkDamaged("List", err)
		if len(recs) != 27 {
			t.Errorf("List: %d runs, want 27", len(recs))
		}
		recs, err = j.List(Filter{Experiment: "exp-3"})
		checkDamaged("List with a filter", err)
		if got := ids(recs); !slices.Equal(got, []uint64{25, 18, 11}) { // and 4, damaged
			t.Errorf("List of exp-3: ids %v", got)
		}
		n := 0
		checkDamaged("Each", j.Each(func(Record) error { n++; return nil }))
		if n != 27 {
			t.Errorf("Each: %d runs, want 27", n)
		}
		st, err := j.Stats()
		checkDamaged("Stats", err)
		if st.Runs != 27 || st.Damaged != 3 || st.Open != 3 {
			t.Errorf("Stats: %+v", st)
		}
		if _, err := j.Get(17); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
			t.Errorf("Get(17): %v, want ErrDamaged naming %s", err, path)
		}
		if open, err := j.OpenRuns(); err != nil || len(open) != 3 {
			t.Errorf("OpenRuns: %v, %v", ids(open), err)
		}
		if !ro {
			if _, err := j.Update(4, func(*Record) error { return nil }); !errors.Is(err, ErrDamaged) {
				t.Errorf("Update of a damaged run: %v", err)
			}
			// Prune keeps damaged runs: they may be open ones, and they are evidence.
			if _, err := j.Prune(1, 0, t0); err != nil {
				t.Errorf("Prune: %v", err)
			}
			if st, _ := j.Stats(); st.Damaged != 3 {
				t.Errorf("after Prune: %d damaged runs, want 3 kept", st.Damaged)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateSchema1 opens a journal as schema 1 wrote it (bare JSON values): a writable
// Open seals every record, in batches, and the records read back the same.
func TestMigrateSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	n := migrateBatch*2 + 7
	writeJournal(t, path, n)
	var before []Record
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keySchema, idKey(1)); err != nil {
			return err
		}
		runs := tx.Bucket(bucketRuns)
		c := runs.Cursor()
		var keys, vals [][]byte
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			before = append(before, r)
			keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v[sealSize:]))
		}
		vals[9] = []byte("{\"experiment\":\"bad \xff\"}") // not UTF-8: must stay unsealed, and damaged
		for i := range keys {
			if err := runs.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	// Read-only, schema 1 reads as it is.
	j, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := j.Stats(); st.Schema != 1 || st.Runs != n-1 || !errors.Is(err, ErrDamaged) {
		t.Errorf("schema 1, read-only: %+v, %v", st, err)
	}
	j.Close()

	start := time.Now()
	j, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("migrated %d runs in %v", n, time.Since(start))
	defer j.Close()
	unsealed := 0
	err = j.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyUnsealed) != nil {
			t.Error("migration mark left behind")
		}
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			if v[0] != sealTag {
				unsealed++
			}
			return nil
		})
	})
	if err != nil || unsealed != 1 {
		t.Errorf("%d runs left unsealed, want 1 (%v)", unsealed, err)
	}
	st, err := j.Stats()
	if st.Schema != SchemaVersion || st.Runs != n-1 || st.Damaged != 1 {
		t.Errorf("after migration: %+v, %v", st, err)
	}
	after := []Record{}
	_ = j.Each(func(r Record) error { after = append(after, r); return nil })
	before = slices.Delete(before, 9, 10)
	a, _ := json.Marshal(after)
	b, _ := json.Marshal(before)
	if !bytes.Equal(a, b) {
		t.Error("records read back differently after migration")
	}
}

// TestMigrationResumes: a migration cut short (the mark left, half the runs sealed) goes on
// at the next Open.
func TestMigrationResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	writeJournal(t, path, 100)
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		for id := uint64(50); id <= 100; id++ {
			v := runs.Get(idKey(id))
			if err := runs.Put(idKey(id), bytes.Clone(v[sealSize:])); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyUnsealed, idKey(50))
	})
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	err = j.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			if v[0] != sealTag {
				t.Errorf("run %d left unsealed", binary.BigEndian.Uint64(k))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRawNotUTF8Refused(t *testing.T) {
	j := openTemp(t, Options{NoSync: true})
	r := newRecord("e")
	r.Params = json.RawMessage("{\"a\":\"\xff\"}")
	if err := j.Begin(&r); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Begin with params that are not UTF-8: %v", err)
	}
}

// BenchmarkEncode is the encoding of a record as Begin stores it: bare (schema 1) and
// sealed (schema 2: the same buffer with a CRC-32C of key and JSON in front).
func BenchmarkEncode(b *testing.B) {
	r := newRecord("api-latency")
	r.ID = 12345
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encode(&r); err != nil {
				b.Fatal(err)
			}
		}
	})
	k := idKey(r.ID)
	b.Run("sealed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := encodeAfter(&r, sealSize)
			if err != nil {
				b.Fatal(err)
			}
			seal(k, v)
		}
	})
}

// BenchmarkMigrate is the writable Open of a schema 1 journal, which seals every record
// (fsync on): 10,000 runs, and with CHAOSCRON_BENCH_MIGRATE_BIG set a million.
//
//	go test -run '^$' -bench Migrate -benchtime 1x ./journal
func BenchmarkMigrate(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("CHAOSCRON_BENCH_MIGRATE_BIG") != "" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				path := filepath.Join(b.TempDir(), "journal.db")
				writeJournal(b, path, n)
				unsealAll(b, path)
				b.StartTimer()
				j, err := Open(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				j.Close()
				b.StartTimer()
			}
		})
	}
}

// unsealAll rewrites a journal as schema 1 stored it.
func unsealAll(t testing.TB, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for next := uint64(1); next != 0; {
		err := db.Update(func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put(keySchema, idKey(1)); err != nil {
				return err
			}
			runs := tx.Bucket(bucketRuns)
			var keys, vals [][]byte
			c := runs.Cursor()
			k, v := c.Seek(idKey(next))
			for ; k != nil && len(keys) < 50_000; k, v = c.Next() {
				keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v[sealSize:]))
			}
			next = 0
			if k != nil {
				next = binary.BigEndian.Uint64(k)
			}
			for i := range keys {
				if err := runs.Put(keys[i], vals[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

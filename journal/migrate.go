package journal

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"go.etcd.io/bbolt"
)

// keyUnsealed marks a migration to schema 2 under way: the id of the first run not yet
// sealed.
var keyUnsealed = []byte("unsealed")

// migrateBatch is how many runs one migration transaction seals: each holds the writer
// lock while it writes, and a crash loses at most one batch's work.
const migrateBatch = 5000

// migrate seals the records of a schema 1 journal (see seal.go), in transactions of
// migrateBatch runs. The first one sets schema 2, so that an older chaoscron refuses the
// file from then on rather than read a sealed record as damage, and notes how far the
// migration got (keyUnsealed), so that a migration cut short by a crash goes on at the
// next Open. Records are sealed as they are, without decoding them: a record damaged
// before it was sealed still fails to decode, and one that is not UTF-8 is left unsealed,
// which readers report as damage.
//
// All of the journal rather than sealing each record when it is next written: closed runs
// are never written again, and an unsealed one is exactly what the seal is there to
// check. It costs one pass over the journal, once (BenchmarkMigrate; docs/performance.md).
func (j *Journal) migrate() error {
	var schema uint64
	var next uint64 = 1
	var marked bool
	err := j.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		schema = binary.BigEndian.Uint64(meta.Get(keySchema)) // 8 bytes: Open checked
		if v := meta.Get(keyUnsealed); len(v) == 8 {
			next, marked = binary.BigEndian.Uint64(v), true
		} else if v != nil {
			return corrupt("migration mark of %d bytes", len(v))
		}
		return nil
	})
	if err != nil || (schema == SchemaVersion && !marked) {
		return err
	}
	for done := false; !done; {
		from := next
		err := j.update(func(tx *bbolt.Tx) error {
			var err error
			next, done, err = sealBatch(tx, from)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sealBatch seals up to migrateBatch runs from id from on, and returns where the next
// batch starts and whether this was the last.
func sealBatch(tx *bbolt.Tx, from uint64) (next uint64, done bool, err error) {
	runs, meta := tx.Bucket(bucketRuns), tx.Bucket(bucketMeta)
	runs.FillPercent = 0.9 // as put: the values grow a little, in id order
	var keys, vals [][]byte
	c := runs.Cursor()
	k, v := c.Seek(idKey(from))
	for n := 0; k != nil && n < migrateBatch; k, v = c.Next() {
		n++
		if len(k) != 8 || len(v) == 0 || v[0] != '{' || !utf8.Valid(v) {
			continue // sealed already, or damaged: left as it is
		}
		sv := make([]byte, sealSize+len(v))
		copy(sv[sealSize:], v)
		seal(k, sv)
		keys, vals = append(keys, bytes.Clone(k)), append(vals, sv)
	}
	// Put after the walk: a write under a cursor can make it skip a key.
	for i := range keys {
		if err := runs.Put(keys[i], vals[i]); err != nil {
			return 0, false, err
		}
	}
	if err := meta.Put(keySchema, idKey(SchemaVersion)); err != nil {
		return 0, false, err
	}
	if k == nil {
		return 0, true, meta.Delete(keyUnsealed)
	}
	next = binary.BigEndian.Uint64(k)
	return next, false, meta.Put(keyUnsealed, idKey(next))
}

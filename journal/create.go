package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// tempInfix marks the files create builds journals in.
const tempInfix = ".new-"

// create makes a new journal at path unless a file is there already. The journal is
// built and fsynced under a temporary name and only then linked into place, so a crash
// never leaves a half-initialised file at path: whatever is at path is a whole journal,
// and an empty or short file there is damage that Open reports instead of papering over.
func create(path string, timeout time.Duration) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open journal %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	_, err := os.Stat(dir)
	newDir := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempInfix+"*") // 0600
	if err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	name := tmp.Name()
	// Once linked, removing the temporary name leaves the journal in place.
	defer func() { _ = os.Remove(name) }()
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	db, err := bbolt.Open(name, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error { return initJournal(tx, time.Now()) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	// Link, unlike rename, fails if path exists: of two processes creating the journal
	// at once, the second keeps the first one's file instead of replacing it under it.
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		// Some filesystems have no hard links. Rename then, after checking again; only
		// a second agent starting in the same instant could slip in between.
		if _, serr := os.Lstat(path); serr == nil {
			return nil
		}
		if err := os.Rename(name, path); err != nil {
			return fmt.Errorf("create journal %s: %w", path, err)
		}
	}
	// The new directory entry must be as durable as the journal's first record.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	if newDir {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("create journal %s: %w", path, err)
		}
	}
	return nil
}

// initJournal lays out an empty journal in a new bbolt file.
func initJournal(tx *bbolt.Tx, now time.Time) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	for _, kv := range [][2][]byte{
		{keyFormat, formatMarker},
		{keySchema, idKey(SchemaVersion)},
		{keyCreated, []byte(now.UTC().Format(time.RFC3339Nano))},
	} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if _, err := tx.CreateBucket(bucketRuns); err != nil {
		return err
	}
	_, err = tx.CreateBucket(bucketOpen)
	return err
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// staleTempAge is how old a leftover temporary file from create must be before Open
// removes it: a younger one may belong to a process creating the journal right now.
const staleTempAge = time.Minute

// removeStaleTemps removes what create left behind when a process died mid-way. Best
// effort: they are small, and their only harm is clutter.
func (j *Journal) removeStaleTemps() {
	dir, base := filepath.Split(j.path)
	matches, err := filepath.Glob(filepath.Join(dir, "."+base+tempInfix+"*"))
	if err != nil {
		return
	}
	for _, m := range matches {
		if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTempAge {
			_ = os.Remove(m)
		}
	}
}

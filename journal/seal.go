package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf8"
)

// A run is stored sealed (schema 2): a tag byte, the CRC-32C of the run's key and JSON,
// big-endian, then the JSON. bbolt checks nothing of a value, so without the checksum a
// flipped byte inside a record was read back as a different run, or as bytes that are not
// UTF-8, or failed the whole of `journal list`. CRC-32C is computed by the CPU's own
// instruction (about 50 ns for a record), and the seal is written into the buffer encode
// allocates anyway. The key is in the sum so that a record found under another run's key
// is damage too.
//
// Schema 1 stored the bare JSON, which always starts with '{': a value that starts with
// it is read as an unsealed record, unchecked (Open seals them; see migrate).
const (
	sealTag  = 0x02
	sealSize = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal fills in the seal of v, a value whose first sealSize bytes encode reserved.
func seal(key, v []byte) {
	v[0] = sealTag
	binary.BigEndian.PutUint32(v[1:sealSize], sum(key, v[sealSize:]))
}

func sum(key, js []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, js)
}

// ErrDamaged matches the error for a run whose record is damaged: its checksum does not
// match, or it is not a record. Such errors match ErrCorrupt too.
var ErrDamaged = errors.New("damaged record")

// recordError is one damaged run.
type recordError struct {
	id  uint64
	why string
}

func (e *recordError) Error() string {
	return fmt.Sprintf("run %d: %v: %s", e.id, ErrDamaged, e.why)
}

func (e *recordError) Is(target error) bool { return target == ErrDamaged || target == ErrCorrupt }

// unseal checks the value of run key and returns its JSON.
func unseal(id uint64, key, v []byte) ([]byte, error) {
	switch {
	case len(v) > 0 && v[0] == '{':
		// Unsealed (schema 1): no sum to check. Strings decode with invalid UTF-8
		// replaced, but params and undo are kept as raw bytes and printed as they are.
		if !utf8.Valid(v) {
			return nil, &recordError{id, "not valid UTF-8"}
		}
		return v, nil
	case len(v) < sealSize+2 || v[0] != sealTag:
		return nil, &recordError{id, "not a sealed record"}
	}
	js := v[sealSize:]
	if sum(key, js) != binary.BigEndian.Uint32(v[1:sealSize]) {
		return nil, &recordError{id, "checksum mismatch"}
	}
	return js, nil
}

// DamagedError reports the runs a read skipped because their records are damaged. It
// comes back with everything else the read found: List's records, Stats' counts, Each's
// calls. It matches ErrDamaged and ErrCorrupt.
type DamagedError struct {
	Path string
	Runs []uint64 // ids, in the order met
	Errs []error  // why, one per id
}

func (e *DamagedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "journal %s: %d damaged run", e.Path, len(e.Runs))
	if len(e.Runs) != 1 {
		b.WriteByte('s')
	}
	b.WriteString(" skipped: ")
	const most = 10
	for i, err := range e.Errs {
		if i == most {
			fmt.Fprintf(&b, "; and %d more", len(e.Errs)-most)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *DamagedError) Is(target error) bool { return target == ErrDamaged || target == ErrCorrupt }

// skipped collects the damaged runs of one read.
type skipped struct{ e DamagedError }

// add takes err if it is a damaged record, to skip it, and reports whether it did.
func (s *skipped) add(err error) bool {
	var re *recordError
	if !errors.As(err, &re) {
		return false
	}
	s.e.Runs = append(s.e.Runs, re.id)
	s.e.Errs = append(s.e.Errs, re)
	return true
}

// err is the read's DamagedError, or nil.
func (s *skipped) err(path string) error {
	if len(s.e.Runs) == 0 {
		return nil
	}
	s.e.Path = path
	return &s.e
}

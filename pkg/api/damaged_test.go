package api

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chaoscron/chaoscron/journal"
)

// TestDamagedHeaderBounded: the damaged runs travel in a header of bounded size, however
// many there are, and the client still learns how many it was not told about.
func TestDamagedHeaderBounded(t *testing.T) {
	de := &journal.DamagedError{Path: "/var/lib/chaoscron/j.db"}
	for id := range uint64(5000) {
		de.Runs = append(de.Runs, id+1)
		de.Errs = append(de.Errs, fmt.Errorf("run %d: damaged record: checksum mismatch", id+1))
	}
	h := damaged(de)
	if len(h) > 200<<10 {
		t.Fatalf("header of %d bytes for 5,000 damaged runs, want it bounded", len(h))
	}
	var got *journal.DamagedError
	if err := parseDamaged(h); !errors.As(err, &got) {
		t.Fatalf("parseDamaged = %v, want a *journal.DamagedError", err)
	}
	if got.Path != de.Path || len(got.Runs) != maxDamaged || got.Runs[0] != 1 || got.Runs[maxDamaged-1] != maxDamaged {
		t.Fatalf("parsed %s with %d runs (%v…), want the first %d", got.Path, len(got.Runs), got.Runs[:3], maxDamaged)
	}
	if last := got.Errs[len(got.Errs)-1].Error(); !strings.Contains(last, "4000 more damaged runs") {
		t.Errorf("last error %q does not count the runs left out", last)
	}
	// A few damaged runs travel whole.
	small := &journal.DamagedError{Path: "j.db", Runs: []uint64{7}, Errs: []error{errors.New("run 7: damaged record: checksum mismatch")}}
	if err := parseDamaged(damaged(small)); err == nil || err.Error() != small.Error() {
		t.Errorf("round trip of one damaged run: %v, want %v", err, small)
	}
}

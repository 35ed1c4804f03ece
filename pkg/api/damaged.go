package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/chaoscron/chaoscron/journal"
)

// DamagedHeader carries the runs a read skipped because their records are damaged
// (journal.DamagedError), so a read through the agent prints the rest and warns exactly as a
// read of the file does. GET /v1/runs and /v1/stats send it as a header; /v1/export, which
// learns of damage only as it streams, as a trailer. The value is form-encoded: path, then a
// run and a why for each damaged run.
const DamagedHeader = "Chaoscron-Damaged"

// maxDamaged bounds the runs a header names (about 100 bytes each), so that a journal damaged
// throughout cannot make one answer's header grow with it; the rest are counted ("more").
const maxDamaged = 1000

// damaged encodes err for DamagedHeader, or returns "" if err is not (only) damage.
func damaged(err error) string {
	var de *journal.DamagedError
	if !errors.As(err, &de) {
		return ""
	}
	v := url.Values{"path": {de.Path}}
	for i, id := range de.Runs[:min(len(de.Runs), maxDamaged)] {
		v.Add("run", strconv.FormatUint(id, 10))
		if i < len(de.Errs) {
			v.Add("why", de.Errs[i].Error())
		}
	}
	if n := len(de.Runs) - maxDamaged; n > 0 {
		v.Set("more", strconv.Itoa(n))
	}
	return v.Encode()
}

// parseDamaged is the client's side of damaged: nil if h is empty.
func parseDamaged(h string) error {
	if h == "" {
		return nil
	}
	v, err := url.ParseQuery(h)
	if err != nil {
		return fmt.Errorf("%s header %q: %w", DamagedHeader, h, err)
	}
	de := &journal.DamagedError{Path: v.Get("path")}
	whys := v["why"]
	for i, s := range v["run"] {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%s header: run %q is not an id", DamagedHeader, s)
		}
		de.Runs = append(de.Runs, id)
		why := fmt.Sprintf("run %d: %v", id, journal.ErrDamaged)
		if i < len(whys) {
			why = whys[i]
		}
		de.Errs = append(de.Errs, errors.New(why))
	}
	if more := v.Get("more"); more != "" && len(de.Errs) > 0 {
		last := len(de.Errs) - 1
		de.Errs[last] = fmt.Errorf("%w; and %s more damaged runs the agent did not list", de.Errs[last], more)
	}
	return de
}

// served reports whether a read that failed with err can still be answered: when the only
// trouble is damaged runs, it sets DamagedHeader and the caller serves what was read.
func served(w http.ResponseWriter, err error) bool {
	if err == nil {
		return true
	}
	h := damaged(err)
	if h == "" {
		return false
	}
	w.Header().Set(DamagedHeader, h)
	return true
}

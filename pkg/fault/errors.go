package fault

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EchoMax is how many bytes of a value an error message quotes. A message is read by a
// person; a megabyte of a mistyped value in it only buries the mistake.
const EchoMax = 64

// Quote is strconv.Quote for a value echoed in an error: a value longer than EchoMax bytes
// is cut (at a character boundary) and its length told, as in "aaaa…"…(1000000 bytes).
func Quote(s string) string {
	if len(s) <= EchoMax {
		return strconv.Quote(s)
	}
	cut := EchoMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// FieldError is a problem with one parameter. Key is relative to the fault's mapping
// ("loss", "ports[1]"); the config loader prefixes the experiment's path and adds the line.
type FieldError struct {
	Key string
	Msg string
	// Path is Key as segments, mapping keys (string) and list indexes (int), when DecodeMap
	// found it; nil otherwise (then Key is read back by the caller).
	Path []any
}

func (e *FieldError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// Errors is a list of problems found together, so a user sees all of them at once.
type Errors []*FieldError

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Err returns nil for an empty list, so `return errs.Err()` reads naturally.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Add appends a FieldError.
func (es *Errors) Add(key, msg string) {
	*es = append(*es, &FieldError{Key: key, Msg: msg})
}

// Has reports whether key has a problem already, so a check does not add "is required"
// on top of "is not a size".
func (es Errors) Has(key string) bool {
	for _, e := range es {
		if e.Key == key {
			return true
		}
	}
	return false
}

// FieldErrors flattens err into FieldErrors: an Errors list, a single *FieldError, or
// anything else as one error without a key.
func FieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return []*FieldError{{Msg: err.Error()}}
}

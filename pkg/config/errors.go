package config

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Error is one problem with the configuration, placed as precisely as we can: the file (or
// the environment variable, or "command line" for overrides), the line and column of the
// offending key in that file, and the key path inside the config.
type Error struct {
	File         string
	Line, Column int
	// Path is the key path, e.g. "experiments[2].fault.loss"; empty for problems with the
	// file as a whole (a YAML syntax error).
	Path string
	Msg  string

	err error // the underlying error, if any, for errors.Is (fs.ErrNotExist)
}

// Error formats e as "file.yaml:14:7: experiments[2].fault.loss: msg", leaving out what is
// unknown (no line for a value from the environment, no path for a syntax error).
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(clipMsg(e.Msg))
	return b.String()
}

// maxMsg bounds one message whatever it echoes; clipMsg's quoted values keep real
// messages far below it.
const maxMsg = 1024

// clipMsg cuts every quoted value in msg to fault.EchoMax bytes, telling its length, and
// the whole message to maxMsg. Values are quoted by this package, by the fault packages and
// by the schedule parser; cutting them here, where every message is formatted, keeps
// `chaoscron validate` of a megabyte-long value to a few lines.
func clipMsg(msg string) string {
	if len(msg) <= fault.EchoMax+2 {
		return msg
	}
	var b strings.Builder
	for rest := msg; ; {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		q, err := strconv.QuotedPrefix(rest[i:])
		if err != nil {
			// A quote that starts no quoted value: nothing to cut up to the line's end
			// (skipping there keeps this linear).
			j := strings.IndexByte(rest[i:], '\n')
			if j < 0 {
				b.WriteString(rest[i:])
				break
			}
			b.WriteString(rest[i : i+j])
			rest = rest[i+j:]
			continue
		}
		rest = rest[i+len(q):]
		if v, err := strconv.Unquote(q); err == nil && len(v) > fault.EchoMax {
			q = fault.Quote(v)
		}
		b.WriteString(q)
	}
	out := b.String()
	if len(out) > maxMsg {
		cut := maxMsg
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…(" + strconv.Itoa(len(out)) + " bytes)"
	}
	return out
}

// Unwrap returns the underlying error, e.g. the fs.PathError of an unreadable file.
func (e *Error) Unwrap() error { return e.err }

// Errors is every problem found in one configuration, sorted by position.
type Errors []*Error

// Error joins the messages with newlines, one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As look at every problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders problems by line, then column; problems without a line (from the
// environment or the command line) come first, in the order they were found.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// path is a key path inside the config: string segments are mapping keys, int segments list
// indexes. It is kept structured (not a dotted string) because window names may contain dots.
type path []any

// key returns p extended by a mapping key. It always copies, so sibling paths never share
// (and overwrite) a backing array.
func (p path) key(k string) path { return append(slices.Clip(p), k) }

// index returns p extended by a list index.
func (p path) index(i int) path { return append(slices.Clip(p), i) }

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// String formats p as "experiments[2].fault.loss"; a key that would be ambiguous in that
// notation (a window named "a.b") is quoted: windows["a.b"].schedule.
func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		switch s := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		case string:
			if len(s) > fault.EchoMax {
				b.WriteString("[" + fault.Quote(s) + "]") // a key can be a mistake as long as any value
				continue
			}
			if !plainKey.MatchString(s) {
				b.WriteString("[" + strconv.Quote(s) + "]")
				continue
			}
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

// hasPrefix reports whether q is p or one of its ancestors.
func (p path) hasPrefix(q path) bool {
	return len(q) <= len(p) && slices.Equal(p[:len(q)], q)
}

// parseFaultKey splits a fault parameter key as fault.FieldError has it ("ports[1]",
// "targets[0].name") into path segments, so the key's line can be found.
func parseFaultKey(k string) path {
	var p path
	for part := range strings.SplitSeq(k, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			p = append(p, name)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil {
				// Not an index after all: keep the text as a key so nothing is lost.
				return append(p, rest)
			}
			p = append(p, n)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return p
}

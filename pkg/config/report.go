package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// origin records that a layer above the file set the value at p, so a problem there is
// reported against that layer (an environment variable, the command line) rather than
// against a line in the file that the value replaced.
type origin struct {
	p    path
	name string
}

// report collects problems and places each one: which layer, which line, which key.
type report struct {
	file    string
	root    *yaml.Node // the file's YAML, for lines; nil without a file
	origins []origin   // highest precedence first
	errs    Errors
	seen    map[string]bool     // paths with a problem already, so each mistake is told once
	raw     map[string]any      // the merged layers: what was set at all
	getenv  func(string) string // the environment the config was loaded with; nil without one
}

func newReport(file string, root *yaml.Node, origins []origin) *report {
	return &report{file: file, root: root, origins: origins, seen: map[string]bool{}}
}

// add records a problem with the value at p.
func (r *report) add(p path, format string, args ...any) {
	e := &Error{Path: p.String(), Msg: fmt.Sprintf(format, args...), File: r.file}
	line, col, found := locate(r.root, p)
	if o, ok := r.originOf(p, found); ok {
		e.File = o
	} else {
		e.Line, e.Column = line, col
	}
	r.errs = append(r.errs, e)
	r.seen[p.String()] = true
}

// reported reports whether p or one of its parents already has a problem.
func (r *report) reported(p path) bool {
	for i := len(p); i >= 0; i-- {
		if r.seen[p[:i].String()] {
			return true
		}
	}
	return false
}

// originOf returns the layer above the file that set p or a parent of p, if any. found is
// how much of p exists in the file: when the rest of it came from another layer (a window
// that only the environment defines), that layer is the place to point at too.
func (r *report) originOf(p path, found int) (string, bool) {
	for _, o := range r.origins {
		if p.hasPrefix(o.p) {
			return o.name, true
		}
	}
	if found < len(p) {
		for _, o := range r.origins {
			if o.p.hasPrefix(p[:found+1]) {
				return o.name, true
			}
		}
	}
	return "", false
}

// present reports whether any layer set a value at p ("duration: 0s" is present and
// zero, which deserves another message than a duration that is missing; "duration:" with
// nothing after it is missing).
func (r *report) present(p path) bool {
	var v any = r.raw
	for _, seg := range p {
		switch s := seg.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = m[s]; !ok {
				return false
			}
		case int:
			l, ok := v.([]any)
			if !ok || s < 0 || s >= len(l) {
				return false
			}
			v = l[s]
		}
	}
	return v != nil
}

// err returns the problems sorted by position, or nil.
func (r *report) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	sortErrors(r.errs)
	return r.errs
}

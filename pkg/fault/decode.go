package fault

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// Decode copies params into the struct out points to. Fields are matched by their
// `param:"name"` tag; a key with no such field is an error (typos must not pass silently).
// Every problem is reported, as an Errors list of FieldErrors keyed by parameter name.
//
// Values are converted as DecodeMap says: time.Duration ("200ms"), Size ("256MiB"),
// Percent ("1.5%"), strings, bools, numbers, slices of those and pointers to any of them
// (nil when the key is absent, so a fault can tell "not set" from zero).
func Decode(params Params, out any) error {
	return Errors(DecodeMap(params, out, "param")).Err()
}

// DecodeMap is the one decoder of chaoscron's YAML mappings, the config's and every fault's
// parameters: mapstructure walks the structs, lists and maps (fields matched by the tag
// named tag, exactly), and the hooks convert each value to its field's type with the
// messages of this package. It returns every problem, sorted by key, each with its key
// path; nil when there is none. A key with no value ("ramp:") is as if absent.
//
// Conversions, the same everywhere: a whole number where an integer is expected (YAML's
// 1e3 is one; 2.5 is not), a finite number where a float is (never NaN or ±Inf), true or
// false, a string only from a string, durations only as strings ("45s": a bare 12 is a
// mistake, not 12ns), sizes and percents as strings or bare numbers (bytes, percent), and
// a single value where a list of values is expected as a list of one. Strings are accepted
// for numbers and bools too, because environment variables and flags are strings.
//
// hooks run before the conversions, for a caller's own defaults.
func DecodeMap(in map[string]any, out any, tag string, hooks ...mapstructure.DecodeHookFunc) []*FieldError {
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:  mapstructure.ComposeDecodeHookFunc(append(hooks, convert)...),
		ErrorUnused: true,
		TagName:     tag,
		MatchName:   func(a, b string) bool { return a == b },
		Result:      out,
	})
	if err != nil {
		panic("fault.DecodeMap: " + err.Error()) // out is not a pointer: a bug, not input
	}
	root := reflect.TypeOf(out).Elem()
	var es []*FieldError
	for _, de := range leaves("", d.Decode(in)) {
		if strings.HasPrefix(de.err.Error(), "has invalid keys: ") {
			p := resolve(de.name, in)
			if de.name == root.String() {
				p = nil // mapstructure names the top level by its Go type
			}
			// One error for all the unknown keys of a mapping: split it, one per key, each
			// with its own path (so its own line) and a suggestion.
			es = append(es, unknownKeys(p, in, root, tag)...)
			continue
		}
		p := resolve(de.name, in)
		es = append(es, &FieldError{Key: keyString(p), Path: p, Msg: de.err.Error()})
	}
	slices.SortStableFunc(es, func(a, b *FieldError) int { return strings.Compare(a.Key, b.Key) })
	return es
}

// decodeError is one leaf of mapstructure's error tree: a field's name and its problem.
type decodeError struct {
	name string
	err  error
}

// leaves flattens mapstructure's tree of joined errors into its innermost DecodeErrors: a
// field's own error, not the "decoding failed" of the struct around it.
func leaves(name string, err error) []decodeError {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []decodeError
		for _, e := range j.Unwrap() {
			out = append(out, leaves(name, e)...)
		}
		return out
	}
	if de, ok := err.(*mapstructure.DecodeError); ok {
		if inner := leaves(de.Name(), de.Unwrap()); len(inner) > 0 {
			return inner
		}
		return []decodeError{{de.Name(), de.Unwrap()}}
	}
	// Decode wraps several errors once more ("decoding failed due to..."); a hook's own
	// error (a *strconv.NumError, say) is a leaf.
	if w, ok := err.(interface{ Unwrap() error }); ok && isMapstructure(w.Unwrap()) {
		return leaves(name, w.Unwrap())
	}
	return []decodeError{{name, err}}
}

// isMapstructure reports whether err is one of mapstructure's errors or a list of them.
func isMapstructure(err error) bool {
	if _, ok := err.(interface{ Unwrap() []error }); ok {
		return true
	}
	var me mapstructure.Error
	return errors.As(err, &me)
}

// fail is a hook's verdict on one value, worded for people like the messages of Parse*.
func fail(format string, args ...any) error { return fmt.Errorf(format, args...) }

// resolve turns mapstructure's field name ("experiments[2].fault", "windows[a.b].duration")
// into path segments. Map keys may hold dots and brackets, so the name is split along the
// data that was decoded: at a mapping, the longest of its keys that the name goes on with;
// at a list, the index.
func resolve(name string, data any) []any {
	var p []any
	for name != "" {
		bracket := name[0] == '['
		if bracket || name[0] == '.' {
			name = name[1:]
		}
		if m, ok := data.(map[string]any); ok {
			if key, rest, ok := longestKey(m, name, bracket); ok {
				p, name, data = append(p, key), rest, m[key]
				continue
			}
		}
		// A list index, or data that does not go as deep as the name (a single value taken
		// as a list of one: "ports[0]" of `ports: 80`): the text up to the next delimiter.
		i := strings.IndexAny(name, ".[]")
		switch {
		case i < 0:
			i = len(name)
		case i == 0:
			i = 1 // a stray delimiter: step over it
		}
		seg, rest := name[:i], name[i:]
		if bracket {
			rest = strings.TrimPrefix(rest, "]")
		}
		if n, err := strconv.Atoi(seg); bracket && err == nil {
			l, _ := data.([]any)
			data = nil
			if n >= 0 && n < len(l) {
				data = l[n]
			}
			p = append(p, n)
		} else {
			p, data = append(p, seg), nil
		}
		name = rest
	}
	return p
}

// longestKey finds the longest key of m that name starts with, followed by the end of the
// name or a delimiter ("]" first when the key was in brackets); rest is what follows.
func longestKey(m map[string]any, name string, bracket bool) (key, rest string, ok bool) {
	for k := range m {
		if (ok && len(k) <= len(key)) || !strings.HasPrefix(name, k) {
			continue
		}
		after := name[len(k):]
		if bracket {
			if !strings.HasPrefix(after, "]") {
				continue
			}
			after = after[1:]
		}
		if after == "" || after[0] == '.' || after[0] == '[' {
			key, rest, ok = k, after, true
		}
	}
	return key, rest, ok
}

// keyString formats a path as the FieldError keys have always read: "ports[1]", "a.b".
func keyString(p []any) string {
	var b strings.Builder
	for i, s := range p {
		switch s := s.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

// unknownKeys reports each key of the mapping at p that the struct type there has no field
// for.
func unknownKeys(p []any, in map[string]any, root reflect.Type, tag string) []*FieldError {
	var data any = in
	t := root
	for _, seg := range p {
		t = elemAt(t, seg, tag)
		switch s := seg.(type) {
		case string:
			m, _ := data.(map[string]any)
			data = m[s]
		case int:
			l, _ := data.([]any)
			if s < 0 || s >= len(l) {
				return nil
			}
			data = l[s]
		}
	}
	m, _ := asMap(data)
	if t == nil || t.Kind() != reflect.Struct {
		return []*FieldError{{Key: keyString(p), Path: p, Msg: "unknown keys"}}
	}
	known := fieldNames(t, tag)
	var es []*FieldError
	for _, k := range slices.Sorted(mapKeys(m)) {
		if !slices.Contains(known, k) {
			kp := append(slices.Clip(p), k)
			es = append(es, &FieldError{Key: keyString(kp), Path: kp, Msg: UnknownKey(k, known)})
		}
	}
	return es
}

// elemAt is the type found at seg inside a value of type t (nil when there is none).
func elemAt(t reflect.Type, seg any, tag string) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		name, _ := seg.(string)
		for i := range t.NumField() {
			f := t.Field(i)
			if tagName(f, tag) == name {
				return f.Type
			}
		}
		return nil
	case reflect.Map, reflect.Slice:
		return t.Elem()
	}
	return nil
}

func tagName(f reflect.StructField, tag string) string {
	name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
	return name
}

// fieldNames lists the keys a struct type takes, sorted, for messages.
func fieldNames(t reflect.Type, tag string) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if n := tagName(f, tag); f.IsExported() && n != "" && n != "-" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// UnknownKey is the message for a key no field takes: a suggestion when one known name is
// a likely typo of it, else the known names.
func UnknownKey(k string, known []string) string {
	best, bestDist := "", 3 // suggest only close matches: a typo, not a different word
	for _, n := range known {
		if len(k) > len(n)+bestDist {
			continue // too far apart already; and a megabyte-long key costs no time
		}
		if d := editDistance(strings.ToLower(k), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return "unknown key, did you mean " + best + "?"
	}
	return "unknown key (known: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance, for "did you mean" suggestions.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

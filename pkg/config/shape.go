package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// The shape check walks the merged koanf map against the Config types before anything is
// decoded. It exists because mapstructure's own errors are worded for Go programmers
// ("expected type 'time.Duration', got unconvertible type 'int'") and name fields in a form
// that cannot be mapped back to a YAML position, and because mapstructure's weak typing
// would quietly turn `duration: 12` into 12 nanoseconds.
//
// Every value is checked and converted to the exact Go type of its field, so the decode
// that follows cannot fail on a value the check let through; a value that does not fit is
// reported and removed (a list item is emptied instead, so later indexes still match the
// file), and validation leaves reported paths alone so one mistake is one message.

var (
	durationType   = reflect.TypeFor[time.Duration]()
	faultType      = reflect.TypeFor[Fault]()
	experimentType = reflect.TypeFor[Experiment]()
)

// shapeStruct checks mapping m against struct type t, in place. m may be nil.
func (r *report) shapeStruct(p path, m map[string]any, t reflect.Type) {
	if t == faultType {
		r.shapeFault(p, m)
		return
	}
	fields, known := structFields(t)
	for _, k := range sortedKeys(m) {
		f, ok := fields[k]
		if !ok {
			r.add(p.key(k), "%s", unknownKey(k, known))
			delete(m, k)
			continue
		}
		v := m[k]
		if v == nil {
			// `timezone:` with nothing after it means "the default", as if it were absent.
			delete(m, k)
			continue
		}
		nv, ok := r.shapeValue(p.key(k), v, f.Type)
		if !ok {
			delete(m, k)
			continue
		}
		m[k] = nv
	}
	if t == experimentType {
		if _, ok := m["probability"]; !ok {
			m["probability"] = DefaultProbability
		}
		if _, ok := m["concurrency"]; !ok {
			m["concurrency"] = ConcurrencyForbid
		}
	}
}

// shapeFault checks the fault mapping: "type" must be a string; every other key is a
// parameter that the fault's own factory checks later.
func (r *report) shapeFault(p path, m map[string]any) {
	v, ok := m["type"]
	if !ok || v == nil {
		delete(m, "type")
		return
	}
	if s, ok := v.(string); ok {
		m["type"] = s
		return
	}
	r.add(p.key("type"), "expected a fault type name, got %s", describe(v))
	delete(m, "type")
}

// shapeValue checks v against type t and returns it converted to t.
func (r *report) shapeValue(p path, v any, t reflect.Type) (any, bool) {
	if t == durationType {
		return r.shapeDuration(p, v)
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := asMap(v)
		if !ok {
			r.add(p, "expected a mapping, got %s", describe(v))
			return nil, false
		}
		r.shapeStruct(p, m, t)
		return m, true
	case reflect.Map:
		m, ok := asMap(v)
		if !ok {
			r.add(p, "expected a mapping of names to %s, got %s", entryKind(t.Elem()), describe(v))
			return nil, false
		}
		for _, k := range sortedKeys(m) {
			e := m[k]
			if e == nil {
				e = map[string]any{}
			}
			nv, ok := r.shapeValue(p.key(k), e, t.Elem())
			if !ok {
				delete(m, k)
				continue
			}
			m[k] = nv
		}
		return m, true
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			if t.Elem().Kind() != reflect.String {
				r.add(p, "expected a list, got %s", describe(v))
				return nil, false
			}
			// `protect: pause` means a list of one, as it reads.
			items = []any{v}
		}
		for i, it := range items {
			if it == nil && t.Elem().Kind() == reflect.Struct {
				it = map[string]any{}
			}
			nv, ok := r.shapeValue(p.index(i), it, t.Elem())
			if !ok {
				// Keep the item (emptied) so the indexes of the ones after it still match
				// the file; validation skips what was reported.
				nv = reflect.Zero(t.Elem()).Interface()
				if t.Elem().Kind() == reflect.Struct {
					nv = map[string]any{}
				}
			}
			items[i] = nv
		}
		return items, true
	case reflect.String:
		if s, ok := v.(string); ok {
			return s, true
		}
		hint := ""
		switch v.(type) {
		case int, int64, uint64, float64, bool:
			hint = " (put it in quotes)"
		}
		r.add(p, "expected a string, got %s%s", describe(v), hint)
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			return x, true
		case string: // environment and command line
			if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
				return b, true
			}
		}
		r.add(p, "expected true or false, got %s", describe(v))
	case reflect.Int:
		n, ok := toInt(v)
		if ok {
			return n, true
		}
		r.add(p, "expected a whole number, got %s", describe(v))
	case reflect.Uint64:
		n, ok := toUint(v)
		if ok {
			return n, true
		}
		r.add(p, "expected a whole number ≥ 0, got %s", describe(v))
	case reflect.Float64:
		n, ok := toFloat(v)
		if ok {
			return n, true
		}
		r.add(p, "expected a number, got %s", describe(v))
	default:
		// A field type the schema grew without teaching the check: a bug, not user error.
		panic("config: shape check does not know " + t.String())
	}
	return nil, false
}

func (r *report) shapeDuration(p path, v any) (any, bool) {
	switch x := v.(type) {
	case time.Duration: // an override from a typed flag
		return x, true
	case string:
		d, err := fault.ParseDuration(x)
		if err != nil {
			r.add(p, "%v", err)
			return nil, false
		}
		return d, true
	}
	r.add(p, "expected a duration like 45s, got %s", describe(v))
	return nil, false
}

// structFields maps koanf tag names to fields, and lists the names for messages.
func structFields(t reflect.Type) (map[string]reflect.StructField, []string) {
	fields := map[string]reflect.StructField{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f
		names = append(names, tag)
	}
	slices.Sort(names)
	return fields, names
}

func unknownKey(k string, known []string) string {
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

func entryKind(t reflect.Type) string {
	if t.Kind() == reflect.Struct {
		return "mappings"
	}
	return t.String()
}

// asMap accepts both map forms YAML decoding produces; keys become strings.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// toInt accepts any integer, a whole float (YAML reads 1e3 as a float) and, from the
// environment or the command line, a decimal string.
func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, strconv.IntSize)
		return int(n), err == nil
	case float64:
		if x != math.Trunc(x) || x < math.MinInt || x >= math.MaxInt {
			return 0, false
		}
		return int(x), true
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		n := rv.Int()
		return int(n), n >= math.MinInt && n <= math.MaxInt
	case rv.CanUint():
		n := rv.Uint()
		return int(n), n <= math.MaxInt
	}
	return 0, false
}

func toUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseUint(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	case float64:
		if x != math.Trunc(x) || x < 0 || x >= math.MaxUint64 {
			return 0, false
		}
		return uint64(x), true
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		n := rv.Int()
		return uint64(n), n >= 0
	case rv.CanUint():
		return rv.Uint(), true
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return n, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return float64(rv.Int()), true
	case rv.CanUint():
		return float64(rv.Uint()), true
	}
	return 0, false
}

// describe shows a value the way the user wrote it, for "expected X, got Y".
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(x)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	case time.Time:
		return "the date " + x.Format(time.DateOnly) + " (quote it to make it a string)"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

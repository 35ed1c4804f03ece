package fault

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
	percentType  = reflect.TypeFor[Percent]()
)

// convert is DecodeMap's hook: it returns v as exactly the type to (or as the mapping or
// list mapstructure walks on), or a valueError saying what was expected and what was given.
// Doing every conversion here, rather than leaving some to mapstructure, is what gives one
// set of rules and one wording; mapstructure's own would truncate 2.5 to an int of 2.
func convert(_ reflect.Type, to reflect.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch to {
	case durationType:
		return toDuration(v)
	case sizeType:
		return toSize(v)
	case percentType:
		return toPercent(v)
	}
	switch to.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v, nil // the pointed-to value comes back through here
	case reflect.Struct:
		if m, ok := asMap(v); ok {
			return m, nil
		}
		return nil, fail("expected a mapping, got %s", Describe(v))
	case reflect.Map:
		if m, ok := asMap(v); ok {
			return m, nil
		}
		what := to.Elem().String()
		if to.Elem().Kind() == reflect.Struct {
			what = "mappings"
		}
		if to.Elem().Kind() == reflect.Interface {
			return nil, fail("expected a mapping, got %s", Describe(v))
		}
		return nil, fail("expected a mapping of names to %s, got %s", what, Describe(v))
	case reflect.Slice:
		switch v.(type) {
		case []any:
			return v, nil
		case map[string]any, map[any]any:
			return nil, fail("expected a list, got %s", Describe(v))
		}
		if k := to.Elem().Kind(); k == reflect.Struct || k == reflect.Map || k == reflect.Slice {
			return nil, fail("expected a list, got %s", Describe(v))
		}
		// A single value where a list is expected is taken as a list of one:
		// `interfaces: eth0` and `protect: pause` mean what they say.
		return []any{v}, nil
	case reflect.String:
		if s, ok := v.(string); ok {
			return reflect.ValueOf(s).Convert(to).Interface(), nil
		}
		hint := ""
		switch v.(type) {
		case int, int64, uint64, float64, bool:
			hint = " (put it in quotes)"
		}
		return nil, fail("expected a string, got %s%s", Describe(v), hint)
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			return reflect.ValueOf(x).Convert(to).Interface(), nil
		case string: // environment and command line
			if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
				return reflect.ValueOf(b).Convert(to).Interface(), nil
			}
		}
		return nil, fail("expected true or false, got %s", Describe(v))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := number(v)
		if !ok || n != math.Trunc(n) {
			return nil, fail("expected a whole number, got %s", Describe(v))
		}
		out := reflect.New(to).Elem()
		// 2^63 itself is out of range but converts to MinInt64: compare before converting.
		if n >= math.MaxInt64 || n < math.MinInt64 || out.OverflowInt(int64(n)) || !exactInt(v) {
			return nil, fail("%s is out of range", Describe(v))
		}
		out.SetInt(int64(n))
		return out.Interface(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := number(v)
		if !ok || n != math.Trunc(n) || n < 0 {
			return nil, fail("expected a whole number ≥ 0, got %s", Describe(v))
		}
		out := reflect.New(to).Elem()
		u, exact := exactUint(v)
		if !exact {
			if n >= math.MaxUint64 {
				return nil, fail("%s is out of range", Describe(v))
			}
			u = uint64(n)
		}
		if out.OverflowUint(u) {
			return nil, fail("%s is out of range", Describe(v))
		}
		out.SetUint(u)
		return out.Interface(), nil
	case reflect.Float32, reflect.Float64:
		n, ok := number(v)
		if !ok {
			return nil, fail("expected a number, got %s", Describe(v))
		}
		return reflect.ValueOf(n).Convert(to).Interface(), nil
	}
	return v, nil
}

// WholeNumber reads v by the rules DecodeMap has for an int64 field, for a parameter that
// may be a number or a word ("count: all", "signal: TERM").
func WholeNumber(v any) (int64, bool) {
	out, err := convert(nil, reflect.TypeFor[int64](), v)
	n, ok := out.(int64)
	return n, ok && err == nil
}

// number reads a finite number: any Go number, or a decimal string from the environment.
func number(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
		f = n
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		rv := reflect.ValueOf(v)
		switch {
		case rv.CanInt():
			f = float64(rv.Int())
		case rv.CanUint():
			f = float64(rv.Uint())
		default:
			return 0, false
		}
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// exactInt reports whether v, a whole number in float64's range, is also one in int64's:
// an integer string is parsed as such, so 9223372036854775808 is not rounded into range
// ("1e3" is no integer literal but a whole number: fine).
func exactInt(v any) bool {
	switch x := v.(type) {
	case string:
		_, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return !errors.Is(err, strconv.ErrRange)
	case uint64:
		return x <= math.MaxInt64
	case uint:
		return uint64(x) <= math.MaxInt64
	}
	return true
}

// exactUint returns v as a uint64 when it is an integer type or an integer string, so
// large values are not rounded through float64.
func exactUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case string:
		u, err := strconv.ParseUint(strings.TrimSpace(x), 10, 64)
		return u, err == nil
	case float64, float32:
		return 0, false
	}
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanUint():
		return rv.Uint(), true
	case rv.CanInt() && rv.Int() >= 0:
		return uint64(rv.Int()), true
	}
	return 0, false
}

func toDuration(v any) (any, error) {
	switch x := v.(type) {
	case time.Duration: // an override from a typed flag
		return x, nil
	case string:
		d, err := ParseDuration(x)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, fail("expected a duration like 45s, got %s", Describe(v))
}

func toSize(v any) (any, error) {
	switch x := v.(type) {
	case Size:
		return x, nil
	case string:
		sz, err := ParseSize(x)
		if err != nil {
			return nil, err
		}
		return sz, nil
	}
	n, ok := number(v)
	if !ok {
		return nil, fail("expected a size like 256MiB, got %s", Describe(v))
	}
	sz, err := ParseSize(strconv.FormatFloat(n, 'f', -1, 64)) // a bare number is bytes
	if err != nil {
		return nil, err
	}
	return sz, nil
}

func toPercent(v any) (any, error) {
	switch x := v.(type) {
	case Percent:
		return x.check(x.String())
	case string:
		p, err := ParsePercent(x)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	n, ok := number(v)
	if !ok {
		return nil, fail("expected a percentage like 30%%, got %s", Describe(v))
	}
	return Percent(n).check(fmt.Sprint(v)) // a bare number is percent
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

// Describe shows a value the way the user wrote it, for "expected X, got Y": a string
// quoted (and cut, see Quote), a number as written, a list or mapping by its kind.
func Describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return Quote(x)
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

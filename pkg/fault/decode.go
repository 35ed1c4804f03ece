package fault

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Decode copies params into the struct out points to. Fields are matched by their
// `param:"name"` tag; a key with no such field is an error (typos must not pass silently).
// Every problem is reported, as an Errors list of FieldErrors keyed by parameter name.
//
// Supported field types: string, bool, ints, uints, floats, time.Duration ("200ms"),
// Size ("256MiB"), Percent ("1.5%"), slices of those, and pointers to any of them (nil when
// the key is absent, so a fault can tell "not set" from zero).
func Decode(params Params, out any) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("fault.Decode: out must be a pointer to a struct")
	}
	sv := rv.Elem()
	st := sv.Type()
	fields := map[string]int{}
	var known []string
	for i := range st.NumField() {
		if tag := st.Field(i).Tag.Get("param"); tag != "" && tag != "-" {
			fields[tag] = i
			known = append(known, tag)
		}
	}
	slices.Sort(known)

	var errs Errors
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys) // stable error order
	for _, k := range keys {
		i, ok := fields[k]
		if !ok {
			errs.Add(k, fmt.Sprintf("unknown parameter (known: %s)", strings.Join(known, ", ")))
			continue
		}
		if err := set(sv.Field(i), params[k]); err != nil {
			errs.Add(k, err.Error())
		}
	}
	return errs.Err()
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
	percentType  = reflect.TypeFor[Percent]()
)

func set(f reflect.Value, v any) error {
	if v == nil {
		return fmt.Errorf("has no value")
	}
	switch f.Type() {
	case durationType:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a duration like \"200ms\", got %v", describe(v))
		}
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	case sizeType:
		var sz Size
		var err error
		switch x := v.(type) {
		case string:
			sz, err = ParseSize(x)
		default:
			var n float64
			if n, err = number(v); err == nil {
				sz, err = ParseSize(strconv.FormatFloat(n, 'f', -1, 64))
			} else {
				err = fmt.Errorf("expected a size like \"256MiB\", got %v", describe(v))
			}
		}
		if err != nil {
			return err
		}
		f.SetInt(int64(sz))
		return nil
	case percentType:
		var p Percent
		var err error
		switch x := v.(type) {
		case string:
			p, err = ParsePercent(x)
		default:
			var n float64
			if n, err = number(v); err != nil {
				return fmt.Errorf("expected a percentage like \"30%%\", got %v", describe(v))
			}
			p, err = Percent(n).check(fmt.Sprint(v))
		}
		if err != nil {
			return err
		}
		f.SetFloat(float64(p))
		return nil
	}

	switch f.Kind() {
	case reflect.Pointer:
		p := reflect.New(f.Type().Elem())
		if err := set(p.Elem(), v); err != nil {
			return err
		}
		f.Set(p)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a string, got %v", describe(v))
		}
		f.SetString(s)
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			f.SetBool(x)
		case string: // from environment variables
			b, err := strconv.ParseBool(x)
			if err != nil {
				return fmt.Errorf("expected true or false, got %s", Quote(x))
			}
			f.SetBool(b)
		default:
			return fmt.Errorf("expected true or false, got %v", describe(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := number(v)
		if err != nil || n != math.Trunc(n) {
			return fmt.Errorf("expected a whole number, got %v", describe(v))
		}
		// 2^63 itself is out of range but converts to MinInt64: compare before converting.
		if n >= math.MaxInt64 || n < math.MinInt64 || f.OverflowInt(int64(n)) {
			return fmt.Errorf("%v is out of range", v)
		}
		f.SetInt(int64(n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := number(v)
		if err != nil || n != math.Trunc(n) || n < 0 {
			return fmt.Errorf("expected a whole number ≥ 0, got %v", describe(v))
		}
		if n >= math.MaxUint64 || f.OverflowUint(uint64(n)) {
			return fmt.Errorf("%v is out of range", v)
		}
		f.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		n, err := number(v)
		if err != nil {
			return fmt.Errorf("expected a number, got %v", describe(v))
		}
		f.SetFloat(n)
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			// A single value where a list is expected is taken as a list of one:
			// `interfaces: eth0` means what it says.
			items = []any{v}
		}
		s := reflect.MakeSlice(f.Type(), len(items), len(items))
		for i, it := range items {
			if err := set(s.Index(i), it); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		f.Set(s)
	default:
		panic("fault.Decode: unsupported field type " + f.Type().String())
	}
	return nil
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("not a finite number")
		}
		return x, nil
	case string: // from environment variables
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("not a number")
		}
		return f, nil
	}
	return 0, fmt.Errorf("not a number")
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return Quote(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

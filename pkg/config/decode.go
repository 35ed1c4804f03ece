package config

import (
	"reflect"
	"slices"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

var experimentType = reflect.TypeFor[Experiment]()

// decode copies the merged layers into cfg with fault.DecodeMap, the decoder the fault
// parameters go through too, so a value means the same and a mistake reads the same in
// both. Every problem is reported at its key; a value that does not fit leaves its field
// at the default, and validation skips the paths reported here, so one mistake is one
// message.
func (r *report) decode(raw map[string]any, cfg *Config) {
	if items, ok := raw["experiments"].([]any); ok {
		for i, it := range items {
			if it == nil { // "- " alone: an experiment with nothing set, told as such
				items[i] = map[string]any{}
			}
		}
	}
	for _, fe := range fault.DecodeMap(raw, cfg, "koanf", experimentDefaults, limitNumber) {
		r.add(path(fe.Path), "%s", fe.Msg)
	}
}

// experimentDefaults fills in an experiment's defaults before it is decoded: a list item
// has no earlier value to decode onto, as the top-level defaults have.
func experimentDefaults(_, to reflect.Type, v any) (any, error) {
	m, ok := v.(map[string]any)
	if to != experimentType || !ok {
		return v, nil
	}
	_, hasP := m["probability"]
	_, hasC := m["concurrency"]
	if hasP && hasC {
		return m, nil
	}
	out := make(map[string]any, len(m)+2)
	for k, x := range m {
		out[k] = x
	}
	if !hasP || out["probability"] == nil {
		out["probability"] = DefaultProbability
	}
	if !hasC || out["concurrency"] == nil {
		out["concurrency"] = ConcurrencyForbid
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

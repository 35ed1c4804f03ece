package config

import (
	"strings"
	"testing"
)

// TestDecodeMessages pins how values are read, config and fault parameters alike, and that
// every problem is told at once at its own key and line.
func TestDecodeMessages(t *testing.T) {
	const exp = "experiments:\n  - name: a\n    schedule: \"@every 1m\"\n    duration: 1s\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string // the whole messages, in order; none for a valid config
	}{
		{"whole float is an int", "agent: {max_active: 1e1}", nil},
		{"int from a string", "agent: {max_active: \"3\"}", nil},
		{"largest seed", "agent: {seed: 18446744073709551615}", nil},
		{"a list of one", "agent: {protect: pause}", nil},
		{"fraction for an int", "agent: {max_active: 2.5}",
			[]string{"t.yaml:1:9: agent.max_active: expected a whole number, got 2.5"}},
		{"int out of range", "agent: {max_active: 1e30}",
			[]string{"t.yaml:1:9: agent.max_active: 1e+30 is out of range"}},
		{"negative uint", "agent: {seed: -1}",
			[]string{"t.yaml:1:9: agent.seed: expected a whole number ≥ 0, got -1"}},
		{"NaN", exp + "    probability: .nan\n    fault: {type: cpu}",
			[]string{"t.yaml:5:5: experiments[0].probability: expected a number, got NaN"}},
		{"infinity", exp + "    probability: -.inf\n    fault: {type: cpu}",
			[]string{"t.yaml:5:5: experiments[0].probability: expected a number, got -Inf"}},
		{"number for a string", "agent: {listen: 8000}",
			[]string{"t.yaml:1:9: agent.listen: expected a string, got 8000 (put it in quotes)"}},
		{"bare number for a duration", "agent: {max_duration: 12}",
			[]string{"t.yaml:1:9: agent.max_duration: expected a duration like 45s, got 12"}},
		{"mapping for a list", "agent: {protect: {a: b}}",
			[]string{"t.yaml:1:9: agent.protect: expected a list, got a mapping"}},
		{"fault type not a string", exp + "    fault: {type: 5}",
			[]string{"t.yaml:5:13: experiments[0].fault.type: expected a string, got 5 (put it in quotes)"}},
		// mapstructure's Metadata.Unused would lose dry_runn here: it records a mapping's
		// unused keys only when no other field of it failed.
		{"unknown key beside bad values", "agent: {dry_run: maybe, dry_runn: true, max_active: x}", []string{
			`t.yaml:1:9: agent.dry_run: expected true or false, got "maybe"`,
			"t.yaml:1:25: agent.dry_runn: unknown key, did you mean dry_run?",
			`t.yaml:1:41: agent.max_active: expected a whole number, got "x"`}},
		{"keys with dots and brackets", "windows:\n  \"a.b\": {schedule: \"@every 1m\", duration: 12}\n  \"c]d.e\": {schedule: \"@every 1m\", duration: x, extra: 1}", []string{
			`t.yaml:2:34: windows["a.b"].duration: expected a duration like 45s, got 12`,
			`t.yaml:3:36: windows["c]d.e"].duration: "x" is not a duration (examples: 200ms, 45s, 5m)`,
			`t.yaml:3:49: windows["c]d.e"].extra: unknown key (known: duration, schedule)`}},
		{"nothing after a key is the default", "agent:\n  timezone:\n  abort_if:\n" + exp + "    jitter:\n    fault:\n      type: cpu\n      load:\n", nil},
		// The same value is told the same way in the config and in a fault's parameters.
		{"one wording", "agent: {max_active: 2.5, listen: 1}\n" + exp + "    fault: {type: disk, path: /tmp, size: 1, reserve: 2.5, method: 1, colour: red}", []string{
			"t.yaml:1:9: agent.max_active: expected a whole number, got 2.5",
			"t.yaml:1:26: agent.listen: expected a string, got 1 (put it in quotes)",
			"t.yaml:6:60: experiments[0].fault.method: expected a string, got 1 (put it in quotes)",
			"t.yaml:6:71: experiments[0].fault.colour: unknown key (known: method, path, percent, reserve, size)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "t.yaml", nil)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

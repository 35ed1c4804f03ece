package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	yamlv3 "go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that sets a config key; "__" separates the
// levels (CHAOSCRON_AGENT__DRY_RUN=true sets agent.dry_run).
const EnvPrefix = "CHAOSCRON_"

// DemoSource is the Source (and the file name in messages) of the embedded demo.
const DemoSource = "embedded demo"

// commandLine names the overrides layer in messages; overrides come from CLI flags.
const commandLine = "command line"

//go:embed demo.yaml
var demoYAML []byte

// Load builds the config in layers — defaults, the YAML file at path ("" for none), the
// CHAOSCRON_* environment, then overrides (flat koanf keys such as "agent.dry_run", set from
// CLI flags) — and validates it. On problems it returns an Errors value listing all of them,
// each placed at its file and line, or at the environment variable or the command line that
// set the value.
func Load(path string, overrides map[string]any) (*Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			// Read once and parse these very bytes for both the values and the line numbers,
			// so the lines reported always belong to the content that was loaded.
			msg := err.Error()
			var pe *fs.PathError
			if errors.As(err, &pe) {
				msg = pe.Err.Error()
			}
			return nil, Errors{{File: path, Msg: "cannot read: " + msg, err: err}}
		}
		data = b
	}
	return load(path, data, os.Environ, overrides)
}

// Parse is Load on in-memory YAML, without the environment; name stands for the file name
// in messages and becomes the Source.
func Parse(data []byte, name string, overrides map[string]any) (*Config, error) {
	return load(name, data, nil, overrides)
}

// Demo returns the embedded demo schedule: a light CPU burst every 10s and a small file
// written to /tmp every 15s, both short, so a newcomer sees real runs in the journal and
// the metrics at once without harming the host. See demo.yaml.
func Demo() (*Config, error) {
	return load(DemoSource, demoYAML, nil, nil)
}

// LoadDemo is Load with the embedded demo in place of a file: the environment and
// overrides (--journal, --listen, --dry-run, --seed) apply on top of it.
func LoadDemo(overrides map[string]any) (*Config, error) {
	return load(DemoSource, demoYAML, os.Environ, overrides)
}

// DemoYAML returns a copy of the embedded demo's YAML, for users to start their own from.
func DemoYAML() []byte { return append([]byte(nil), demoYAML...) }

// load runs the pipeline: parse for positions, merge the layers with koanf, decode,
// validate. environ is nil when the environment must not be consulted.
func load(name string, data []byte, environ func() []string, overrides map[string]any) (*Config, error) {
	root, err := parseNodes(name, data)
	if err != nil {
		return nil, err
	}
	if e := topLevelError(name, root); e != nil {
		return nil, Errors{e}
	}

	k := koanf.New(".")
	if len(data) > 0 {
		if err := loadYAML(k, data); err != nil {
			return nil, yamlErrors(name, err)
		}
	}

	var origins []origin // highest precedence first: overrides, then the environment
	for key := range overrides {
		origins = append(origins, origin{p: splitKey(key, "."), name: commandLine})
	}
	if environ != nil {
		var envOrigins []origin
		p := env.Provider(".", env.Opt{
			Prefix:      EnvPrefix,
			EnvironFunc: environ,
			TransformFunc: func(k, v string) (string, any) {
				key, ok := envKey(k)
				if ok {
					envOrigins = append(envOrigins, origin{p: splitKey(key, "."), name: k})
				}
				return key, v
			},
		})
		if err := k.Load(p, nil); err != nil {
			return nil, Errors{{File: "environment", Msg: err.Error(), err: err}}
		}
		origins = append(origins, envOrigins...)
	}
	if len(overrides) > 0 {
		if err := k.Load(confmap.Provider(overrides, "."), nil); err != nil {
			return nil, Errors{{File: commandLine, Msg: err.Error(), err: err}}
		}
	}

	r := newReport(name, root, origins)
	if environ != nil {
		r.getenv = envLookup(environ())
	}
	raw := k.Raw() // a deep copy: decode may edit it
	r.raw = raw
	cfg := defaults()
	r.decode(raw, &cfg)
	for i := range cfg.Experiments {
		if cfg.Experiments[i].Fault.Params == nil {
			cfg.Experiments[i].Fault.Params = map[string]any{}
		}
	}
	r.validate(&cfg)
	if err := r.err(); err != nil {
		return nil, err
	}
	cfg.Source = name
	return &cfg, nil
}

// envKey maps CHAOSCRON_AGENT__DRY_RUN to "agent.dry_run". Variables without "__" are not
// config keys (CHAOSCRON_TOKEN is the API token, not a key called "token") and are ignored;
// those with it are, so a typo in one is reported instead of silently doing nothing.
func envKey(name string) (string, bool) {
	rest := strings.TrimPrefix(name, EnvPrefix)
	if !strings.Contains(rest, "__") {
		return "", false
	}
	return strings.ReplaceAll(strings.ToLower(rest), "__", "."), true
}

// envLookup is os.Getenv over the variables environ listed.
func envLookup(vars []string) func(string) string {
	m := make(map[string]string, len(vars))
	for _, kv := range vars {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

func splitKey(key, delim string) path {
	var p path
	for s := range strings.SplitSeq(key, delim) {
		p = append(p, s)
	}
	return p
}

// parseNodes parses data for positions. yaml.v3 reports malformed input as errors, but it is
// a large parser fed untrusted bytes: a panic in it becomes an error here, never a crash.
// A second document ("---") is an error rather than silently ignored, as koanf would.
func parseNodes(name string, data []byte) (root *yamlv3.Node, err error) {
	defer func() {
		if p := recover(); p != nil {
			root, err = nil, Errors{syntaxError(name, fmt.Errorf("yaml: %v", p))}
		}
	}()
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var n yamlv3.Node
	if err := dec.Decode(&n); err != nil && err != io.EOF {
		return nil, Errors{syntaxError(name, err)}
	}
	var next yamlv3.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, Errors{syntaxError(name, err)}
	default:
		return nil, Errors{{File: name, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document starts here; a config is a single document"}}
	}
	if es := complexKeys(name, &n, 0); len(es) > 0 {
		return nil, es
	}
	return &n, nil
}

// complexKeys reports mapping keys that are lists or mappings ("? [a, b]: 1"): legal YAML,
// but never a config key, and yaml.v3 would only say "invalid map key" without a line.
func complexKeys(name string, n *yamlv3.Node, depth int) Errors {
	// yaml.v3 bounds nesting itself; this bound only keeps the walk's stack small.
	if n == nil || depth > 1000 {
		return nil
	}
	var es Errors
	if n.Kind == yamlv3.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind != yamlv3.ScalarNode && k.Kind != yamlv3.AliasNode {
				es = append(es, &Error{File: name, Line: k.Line, Column: k.Column,
					Msg: "a key must be a plain name, not a list or a mapping"})
			}
		}
	}
	for _, c := range n.Content {
		es = append(es, complexKeys(name, c, depth+1)...)
	}
	return es
}

// loadYAML merges the file into k, with the same guard against panics as parseNodes.
func loadYAML(k *koanf.Koanf, data []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("yaml: %v", p)
		}
	}()
	return k.Load(rawBytes(data), yaml.Parser())
}

// topLevelError reports a document that is not a mapping (a list, a bare word). An empty
// document is fine: it is the all-defaults config.
func topLevelError(name string, root *yamlv3.Node) *Error {
	if root == nil || root.Kind != yamlv3.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	n := deref(root.Content[0], 0)
	if n == nil || n.Kind == yamlv3.MappingNode || (n.Kind == yamlv3.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	kind := "a value"
	switch n.Kind {
	case yamlv3.SequenceNode:
		kind = "a list"
	case yamlv3.ScalarNode:
		kind = fmt.Sprintf("%q", n.Value)
	}
	return &Error{File: name, Line: n.Line, Column: n.Column,
		Msg: "expected a mapping with agent, journal, api, windows, blackouts and experiments at the top level, got " + kind}
}

// yamlErrors turns the errors of decoding YAML into maps (duplicate keys, keys that are not
// strings) into Errors with their lines.
func yamlErrors(name string, err error) error {
	var te *yamlv3.TypeError
	if !errors.As(err, &te) {
		return Errors{syntaxError(name, err)}
	}
	var es Errors
	for _, msg := range te.Errors {
		es = append(es, syntaxError(name, errors.New("yaml: "+msg)))
	}
	sortErrors(es)
	return es
}

// rawBytes is a koanf provider for bytes already in memory.
type rawBytes []byte

func (b rawBytes) ReadBytes() ([]byte, error) { return b, nil }

func (b rawBytes) Read() (map[string]any, error) {
	return nil, errors.New("rawBytes provider needs a parser")
}

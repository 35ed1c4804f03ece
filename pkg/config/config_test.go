package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

const goodDir = "../../testdata/config/good"

var ignoreLoc = cmpopts.IgnoreUnexported(Config{})

// TestFullConfig loads the design's config sketch and checks every value, the defaults for
// what it leaves out, and the parsed time zone.
func TestFullConfig(t *testing.T) {
	file := filepath.Join(goodDir, "full.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data, file, nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		Agent: Agent{
			Timezone:    "Europe/Berlin",
			Seed:        42,
			MaxActive:   3,
			Listen:      "127.0.0.1:9100",
			Protect:     []string{"pause", "^envoy$"},
			MaxDuration: 2 * time.Hour,
			LogFormat:   "json",
			LogLevel:    "debug",
		},
		Journal: Journal{
			Path:        "/var/lib/chaoscron/journal.db",
			MaxRuns:     5000,
			MaxAge:      168 * time.Hour,
			RecordSkips: true,
		},
		API:   API{TokenFile: "/etc/chaoscron/token", TokenEnv: DefaultTokenEnv},
		Fleet: defaults().Fleet,
		Windows: map[string]Window{
			"business-hours": {Schedule: "0 9 * * MON-FRI", Duration: 8 * time.Hour},
		},
		Blackouts: map[string]Window{
			"release-freeze": {Schedule: "0 0 20 12 *", Duration: 336 * time.Hour},
		},
		Experiments: []Experiment{
			{
				Name:        "api-cpu",
				Schedule:    "*/5 * * * *",
				Probability: 0.3,
				Window:      "business-hours",
				Jitter:      20 * time.Second,
				Duration:    45 * time.Second,
				Concurrency: ConcurrencyAllow,
				Fault:       Fault{Type: "cpu", Params: fault.Params{"workers": 2, "load": "60%"}},
			},
			{
				Name:        "disk.fill_1",
				Schedule:    "@every 1h",
				Probability: 1,
				Duration:    10 * time.Minute,
				Concurrency: ConcurrencyForbid,
				Disabled:    true,
				Fault:       Fault{Type: "cpu", Params: fault.Params{}},
			},
		},
		Source: file,
	}
	if diff := cmp.Diff(want, cfg, ignoreLoc); diff != "" {
		t.Errorf("config differs (-want +got):\n%s", diff)
	}
	if got := cfg.Location().String(); got != "Europe/Berlin" {
		t.Errorf("Location() = %s, want Europe/Berlin", got)
	}
}

// TestDefaults checks that an empty file (and a file of keys with no value) is the
// all-defaults config, and that a config without experiments is valid.
func TestDefaults(t *testing.T) {
	want := defaults()
	for _, tc := range []struct{ name, yaml string }{
		{"empty", ""},
		{"comment only", "# nothing yet\n"},
		{"null document", "~\n"},
		{"empty sections", "agent:\njournal:\napi:\nwindows:\nblackouts:\nexperiments:\n"},
		{"keys without values", "agent:\n  timezone:\n  max_active:\njournal:\n  path:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "defaults.yaml", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want.Source = "defaults.yaml"
			if diff := cmp.Diff(&want, cfg, ignoreLoc); diff != "" {
				t.Errorf("config differs (-want +got):\n%s", diff)
			}
			if cfg.Location() != time.UTC {
				t.Errorf("Location() = %v, want UTC", cfg.Location())
			}
		})
	}
	if want.Agent.MaxActive != 2 || want.Agent.Listen != ":8000" || want.Agent.MaxDuration != time.Hour ||
		want.Journal.Path != "chaoscron.db" || want.Journal.MaxRuns != 10000 || want.Journal.MaxAge != 720*time.Hour ||
		want.API.TokenEnv != "CHAOSCRON_TOKEN" || want.Agent.Timezone != "UTC" {
		t.Errorf("defaults differ from the documented ones: %+v", want)
	}
}

func TestExperimentDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
experiments:
  - name: burn
    schedule: "@every 1m"
    duration: 10s
    fault: {type: cpu}
  - name: never
    schedule: "@every 1m"
    probability: 0
    duration: 10s
    fault: {type: cpu}
`), "x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Experiments
	if e[0].Probability != 1 || e[0].Concurrency != ConcurrencyForbid || e[0].Disabled {
		t.Errorf("defaults not applied: %+v", e[0])
	}
	if e[1].Probability != 0 {
		t.Errorf("an explicit probability of 0 became %v", e[1].Probability)
	}
}

// TestListen checks the values that turn the listener off and the ones that are refused.
func TestListen(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		enabled bool
		ok      bool
	}{
		{`":8000"`, true, true},
		{`"127.0.0.1:9100"`, true, true},
		{`"[::1]:80"`, true, true},
		{`off`, false, true},
		{`""`, false, true},
		{`"8000"`, false, false},
		{`"localhost"`, false, false},
	} {
		cfg, err := Parse([]byte("agent:\n  listen: "+tc.listen+"\n"), "x.yaml", nil)
		if (err == nil) != tc.ok {
			t.Errorf("listen %s: err = %v, want ok=%v", tc.listen, err, tc.ok)
			continue
		}
		if err == nil && cfg.Agent.ListenEnabled() != tc.enabled {
			t.Errorf("listen %s: ListenEnabled() = %v", tc.listen, cfg.Agent.ListenEnabled())
		}
	}
}

func TestDemo(t *testing.T) {
	cfg, err := Demo()
	if err != nil {
		t.Fatalf("the embedded demo does not validate:\n%v", err)
	}
	if cfg.Source != DemoSource {
		t.Errorf("Source = %q", cfg.Source)
	}
	if len(cfg.Experiments) != 2 {
		t.Fatalf("got %d experiments, want 2", len(cfg.Experiments))
	}
	types := map[string]bool{}
	for _, e := range cfg.Experiments {
		types[e.Fault.Type] = true
		// Harmless: short, and not repeated before the previous run is over.
		if e.Duration > 5*time.Second || e.Concurrency != ConcurrencyForbid || e.Disabled {
			t.Errorf("demo experiment %s is not short, exclusive and enabled: %+v", e.Name, e)
		}
	}
	if !types["cpu"] || !types["disk"] {
		t.Errorf("demo fault types = %v, want cpu and disk", types)
	}
	if cfg.Agent.Listen != ":8000" || cfg.Journal.Path != DefaultJournalPath || cfg.Agent.DryRun {
		t.Errorf("demo agent/journal = %+v %+v", cfg.Agent, cfg.Journal)
	}
	for _, e := range cfg.Experiments {
		if e.Fault.Type == "cpu" && (e.Fault.Params["workers"] != 1 || e.Fault.Params["load"] != "30%") {
			t.Errorf("demo cpu params = %v, want 1 worker at 30%%", e.Fault.Params)
		}
		if e.Fault.Type == "disk" && (e.Fault.Params["size"] != "8MiB" || e.Fault.Params["path"] != "/tmp") {
			t.Errorf("demo disk params = %v, want 8MiB in /tmp", e.Fault.Params)
		}
	}
	if got := DemoYAML(); string(got) != string(demoYAML) {
		t.Error("DemoYAML differs from the embedded file")
	}
}

func TestLoadDemoOverrides(t *testing.T) {
	cfg, err := LoadDemo(map[string]any{"journal.path": "/tmp/x.db", "agent.dry_run": true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Journal.Path != "/tmp/x.db" || !cfg.Agent.DryRun || len(cfg.Experiments) != 2 {
		t.Errorf("overrides not applied to the demo: %+v %+v", cfg.Agent, cfg.Journal)
	}
}

func TestLoadFile(t *testing.T) {
	file := filepath.Join(goodDir, "full.yaml")
	cfg, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != file || len(cfg.Experiments) != 2 {
		t.Errorf("Source = %q, %d experiments", cfg.Source, len(cfg.Experiments))
	}

	bad := filepath.Join(badDir, "probability.yaml")
	_, err = Load(bad, nil)
	if want := bad + ":4:5: experiments[0].probability: must be between 0 and 1, got 1.5"; err == nil || err.Error() != want {
		t.Errorf("Load(%s) error = %v, want %s", bad, err, want)
	}
}

func TestLoadNoFile(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Experiments) != 0 || cfg.Agent.MaxActive != DefaultMaxActive {
		t.Errorf("Load(\"\") = %+v", cfg)
	}
}

func TestLoadMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(missing, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
	if want := missing + ": cannot read: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "c.yaml", Line: 14, Column: 7, Path: "experiments[2].fault.loss", Msg: `"150%" is above 100%`},
			`c.yaml:14:7: experiments[2].fault.loss: "150%" is above 100%`},
		{Error{File: "c.yaml", Line: 3, Msg: "invalid YAML: x"}, "c.yaml:3: invalid YAML: x"},
		{Error{File: "CHAOSCRON_AGENT__MAX_ACTIVE", Path: "agent.max_active", Msg: "m"}, "CHAOSCRON_AGENT__MAX_ACTIVE: agent.max_active: m"},
		{Error{Path: "agent.seed", Msg: "m"}, "agent.seed: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	es := Errors{{File: "a", Line: 1, Msg: "x"}, {File: "a", Line: 2, Msg: "y"}}
	if got := es.Error(); got != "a:1: x\na:2: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestPathString(t *testing.T) {
	for _, tc := range []struct {
		p    path
		want string
	}{
		{path{"experiments", 2, "fault", "loss"}, "experiments[2].fault.loss"},
		{path{"windows", "a.b", "schedule"}, `windows["a.b"].schedule`},
		{path{"agent", "protect", 0}, "agent.protect[0]"},
		{nil, ""},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
	for key, want := range map[string]string{
		"loss":            "loss",
		"ports[1]":        "ports[1]",
		"targets[0].name": "targets[0].name",
		"m[1][2]":         "m[1][2]",
	} {
		if got := parseFaultKey(key).String(); got != want {
			t.Errorf("parseFaultKey(%q) = %q", key, got)
		}
	}
}

// TestLines checks placement where it is easy to get wrong: flow mappings, a key reached
// through a YAML merge key, a missing key (its parent's line), and a key with a dot.
func TestLines(t *testing.T) {
	const doc = `base: &base
  schedule: "@every 1m"
  duration: 0s
windows:
  a.b: {schedule: "bad", duration: 1h}
  copy:
    <<: *base
experiments:
  - {name: x, schedule: "@every 1m", duration: 10s, fault: {type: cpu, load: 0}}
  - name: y
    schedule: "@every 1m"
    fault: {type: cpu}
`
	_, err := Parse([]byte(doc), "l.yaml", nil)
	got := err.Error()
	for _, want := range []string{
		`l.yaml:1:1: base: unknown key`,
		`l.yaml:5:9: windows["a.b"].schedule: invalid schedule "bad"`,
		`l.yaml:7:5: windows.copy.duration: must be above 0, got 0s`,
		`l.yaml:9:72: experiments[0].fault.load: 0% must be above 0%`,
		`l.yaml:10:5: experiments[1].duration: missing: how long the fault is held, like 45s or 8h`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

// Package config is chaoscron's configuration: the schema, its defaults, loading in layers
// (defaults → YAML file → CHAOSCRON_* environment → command-line overrides) with koanf, and
// validation that reports every problem at once, each with file:line and key path:
//
//	chaoscron.yaml:14:7: experiments[2].fault.load: "150%" is above 100%
//
// Environment variables use the CHAOSCRON_ prefix and "__" for nesting
// (CHAOSCRON_AGENT__DRY_RUN=true, CHAOSCRON_JOURNAL__PATH=/x); only variables with a "__" in
// them are config keys, so CHAOSCRON_TOKEN and friends are left alone. The environment cannot
// address list items, so experiments are set in the file only; a window or blackout can be set
// from the environment only if its name is lower case (variable names are lower-cased).
// agent.protect takes one regular expression there: use alternation ("pause|sidecar") for
// several.
package config

import (
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// Config is a whole, validated chaoscron configuration.
type Config struct {
	Agent       Agent             `koanf:"agent"`
	Journal     Journal           `koanf:"journal"`
	API         API               `koanf:"api"`
	Fleet       Fleet             `koanf:"fleet"`
	Windows     map[string]Window `koanf:"windows"`
	Blackouts   map[string]Window `koanf:"blackouts"`
	Experiments []Experiment      `koanf:"experiments"`
	// Source is where the config came from: the file path (or the name given to Parse),
	// DemoSource, or "" for Load without a file.
	Source string `koanf:"-"`

	loc *time.Location // Agent.Timezone, parsed once by validation
}

// Agent is the agent's own behaviour.
type Agent struct {
	// Timezone is where schedules are evaluated (default "UTC"); CRON_TZ= prefixes in a
	// schedule still win for that schedule.
	Timezone string `koanf:"timezone"`
	// DryRun records runs without touching the system.
	DryRun bool `koanf:"dry_run"`
	// Seed makes probability rolls reproducible; 0 means random.
	Seed uint64 `koanf:"seed"`
	// MaxActive is how many faults may be active at once, all experiments together (default 2).
	MaxActive int `koanf:"max_active"`
	// Listen is the metrics and health address (default ":8000"); "" or "off" disables it.
	Listen string `koanf:"listen"`
	// Protect are regular expressions of process names and command lines never touched, on
	// top of the built-in self-protection.
	Protect []string `koanf:"protect"`
	// MaxDuration caps every experiment's duration (default 1h).
	MaxDuration time.Duration `koanf:"max_duration"`
	// LogFormat is auto (text on a terminal, JSON otherwise), json or text.
	LogFormat string `koanf:"log_format"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `koanf:"log_level"`
	// AbortIf is the stop condition of every experiment that does not set its own.
	AbortIf AbortIf `koanf:"abort_if"`
}

// AbortIf is a stop condition: an HTTP GET of HTTP must answer ExpectStatus within Timeout.
// It is checked once before a run's intent (a target already unhealthy is a skip, nothing is
// injected), then every Interval while the fault is active: after Failures misses in a row
// the run is ended at once and its fault reverted (status aborted, with the reason). After
// MaxTrips runs of an experiment in a row were aborted so, the experiment pauses itself until
// resumed; with HaltOnTrip a trip halts the whole agent. An empty HTTP means no stop
// condition; validation fills in the defaults when HTTP is set.
type AbortIf struct {
	HTTP         string        `koanf:"http"`
	ExpectStatus int           `koanf:"expect_status"`
	Timeout      time.Duration `koanf:"timeout"`
	Interval     time.Duration `koanf:"interval"`
	Failures     int           `koanf:"failures"`
	MaxTrips     int           `koanf:"max_trips"`
	HaltOnTrip   bool          `koanf:"halt_on_trip"`
}

// Enabled reports whether a stop condition is configured.
func (a AbortIf) Enabled() bool { return a.HTTP != "" }

// Stop condition defaults.
const (
	DefaultAbortStatus   = 200
	DefaultAbortTimeout  = time.Second
	DefaultAbortInterval = time.Second
	DefaultAbortFailures = 3
	DefaultAbortMaxTrips = 3
)

// ListenEnabled reports whether the HTTP listener is on.
func (a Agent) ListenEnabled() bool { return a.Listen != "" && a.Listen != ListenOff }

// ListenOff is the Listen value that disables the HTTP listener.
const ListenOff = "off"

// Journal is where runs are recorded and how much history is kept.
type Journal struct {
	// Path is the bbolt file (default "chaoscron.db").
	Path string `koanf:"path"`
	// MaxRuns bounds the number of records kept (default 10000); 0 means unbounded.
	MaxRuns int `koanf:"max_runs"`
	// MaxAge bounds the age of records kept (default 720h); 0 means unbounded.
	MaxAge time.Duration `koanf:"max_age"`
	// RecordSkips also journals fires that were skipped (window closed, probability lost).
	RecordSkips bool `koanf:"record_skips"`
}

// API configures the control endpoints.
type API struct {
	// TokenFile holds the bearer token for mutating calls.
	TokenFile string `koanf:"token_file"`
	// TokenEnv names the environment variable holding the token when TokenFile is empty
	// (default "CHAOSCRON_TOKEN").
	TokenEnv string `koanf:"token_env"`
}

// Window is a named cron expression plus how long the window stays open after each tick.
// The same shape serves blackouts.
type Window struct {
	Schedule string        `koanf:"schedule"`
	Duration time.Duration `koanf:"duration"`
}

// Experiment is one named, scheduled fault.
type Experiment struct {
	// Name identifies the experiment in the journal, metrics and the CLI; it matches
	// [a-z0-9][a-z0-9-_.]*, at most 63 characters, because it becomes label values and
	// file names.
	Name string `koanf:"name"`
	// Schedule is a cron expression: 5 or 6 fields, @every, @hourly, CRON_TZ=...
	Schedule string `koanf:"schedule"`
	// Probability that a tick really fires, 0..1 (default 1).
	Probability float64 `koanf:"probability"`
	// Window, if set, names the window that must be open for the experiment to fire.
	Window string `koanf:"window"`
	// Jitter is the most a fire is delayed, at random, after its tick.
	Jitter time.Duration `koanf:"jitter"`
	// Duration is how long the fault is held; at most agent.max_duration.
	Duration time.Duration `koanf:"duration"`
	// Concurrency is ConcurrencyForbid (default: skip a tick while a run is active) or
	// ConcurrencyAllow.
	Concurrency string `koanf:"concurrency"`
	// Disabled experiments are validated but never scheduled.
	Disabled bool  `koanf:"disabled"`
	Fault    Fault `koanf:"fault"`
	// AbortIf is the experiment's stop condition; when the key is absent, agent.abort_if's.
	AbortIf AbortIf `koanf:"abort_if"`
}

// Concurrency values.
const (
	ConcurrencyForbid = "forbid"
	ConcurrencyAllow  = "allow"
)

// Fault is the experiment's fault mapping: its type, and every other key as a parameter for
// that type's factory (fault.New).
type Fault struct {
	Type   string       `koanf:"type"`
	Params fault.Params `koanf:",remain"`
}

// Location returns agent.timezone as a *time.Location (UTC when it is empty or unknown,
// which validation does not let through).
func (c *Config) Location() *time.Location {
	if c.loc != nil {
		return c.loc
	}
	if loc, err := time.LoadLocation(c.Agent.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// Defaults, applied before the file, the environment and the overrides.
const (
	DefaultTimezone    = "UTC"
	DefaultMaxActive   = 2
	DefaultListen      = ":8000"
	DefaultMaxDuration = time.Hour
	DefaultLogFormat   = "auto"
	DefaultLogLevel    = "info"
	DefaultJournalPath = "chaoscron.db"
	DefaultMaxRuns     = 10000
	DefaultMaxAge      = 720 * time.Hour
	DefaultTokenEnv    = "CHAOSCRON_TOKEN"
	DefaultProbability = 1.0
)

// defaults returns the config every layer is decoded on top of. Experiment defaults
// (probability, concurrency) are filled in per list item while decoding instead, since
// a list item has no prior value to decode onto.
func defaults() Config {
	return Config{
		Agent: Agent{
			Timezone:    DefaultTimezone,
			MaxActive:   DefaultMaxActive,
			Listen:      DefaultListen,
			MaxDuration: DefaultMaxDuration,
			LogFormat:   DefaultLogFormat,
			LogLevel:    DefaultLogLevel,
		},
		Journal: Journal{
			Path:    DefaultJournalPath,
			MaxRuns: DefaultMaxRuns,
			MaxAge:  DefaultMaxAge,
		},
		API: API{TokenEnv: DefaultTokenEnv},
		Fleet: Fleet{
			Renew:      DefaultFleetRenew,
			StaleAfter: DefaultFleetStaleAfter,
			MaxActive:  DefaultFleetMaxActive,
			RespectPDB: true,
			Disruptive: []string{"process", "network", "memory", "http"},
			LabelsFile: DefaultFleetLabelsFile,
		},
	}
}

package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/metrics"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// configFlags are the flags that feed the config (flags beat env beat file beat defaults).
type configFlags struct {
	file    string
	journal string
	listen  string
	dryRun  bool
	seed    uint64
}

// ConfigEnv names the variable that gives -c its default, so that every command run inside
// the agent's container (kubectl exec … chaoscron journal list) finds the agent's config,
// and through it the journal and the socket, with no flags.
const ConfigEnv = "CHAOSCRON_CONFIG"

func (o *configFlags) addFile(fs *pflag.FlagSet, required bool) {
	usage := "config file (YAML); default $" + ConfigEnv
	if !required {
		usage += "; none: the embedded demo schedule"
	}
	fs.StringVarP(&o.file, "config", "c", os.Getenv(ConfigEnv), usage)
}

func (o *configFlags) addJournal(fs *pflag.FlagSet) {
	fs.StringVar(&o.journal, "journal", "", "journal file (default: journal.path from the config, else "+config.DefaultJournalPath+")")
}

func (o *configFlags) addRun(fs *pflag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "", "address for /metrics and health (\"off\" to disable)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "record what would happen; change nothing")
	fs.Uint64Var(&o.seed, "seed", 0, "seed for probability rolls (0 = random)")
}

// load reads the config the flags name, or the embedded demo when there is none and demo is allowed.
func (o *configFlags) load(fs *pflag.FlagSet, demo bool) (*config.Config, error) {
	over := map[string]any{}
	if fs.Changed("journal") {
		over["journal.path"] = o.journal
	}
	if fs.Changed("listen") {
		over["agent.listen"] = o.listen
	}
	if fs.Changed("dry-run") {
		over["agent.dry_run"] = o.dryRun
	}
	if fs.Changed("seed") {
		over["agent.seed"] = o.seed
	}
	if o.file == "" && demo {
		return config.LoadDemo(over)
	}
	if o.file == "" {
		return config.Load("", over)
	}
	return config.Load(o.file, over)
}

// journalPath is the journal a command reads: --journal, else the config's, else the default.
func (o *configFlags) journalPath(fs *pflag.FlagSet) (string, error) {
	if fs.Changed("journal") {
		return o.journal, nil
	}
	if o.file != "" {
		cfg, err := config.Load(o.file, nil)
		if err != nil {
			return "", err
		}
		return cfg.Journal.Path, nil
	}
	// No file: the defaults and the environment, so that inside the agent's container
	// (kubectl exec) CHAOSCRON_JOURNAL__PATH finds the same journal the agent uses.
	cfg, err := config.Load("", nil)
	if err != nil {
		return "", err
	}
	return cfg.Journal.Path, nil
}

// openJournal opens the journal for an agent-like command (exclusive). A journal another
// agent holds fails with journal.ErrLocked, whose message already says what to do.
func openJournal(path string) (*journal.Journal, error) {
	return journal.Open(path, journal.Options{Timeout: 2 * time.Second})
}

// warnDamaged logs the closed runs Open found damaged (a damaged open run fails Open
// itself). The agent goes on: they are history, and `journal list` skips them.
func warnDamaged(log *slog.Logger, j *journal.Journal) {
	if ids := j.Damaged(); len(ids) > 0 {
		log.Warn("journal has damaged records; they are skipped by the journal commands",
			"journal", j.Path(), "runs", ids)
	}
}

func newAgent() journal.Agent {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return journal.Agent{Host: host, PID: os.Getpid(), Instance: hex.EncodeToString(b), Version: version}
}

// faultEnv is what the faults may know about this agent.
func faultEnv(cfg *config.Config, log *slog.Logger) (fault.Env, error) {
	env := fault.Env{Self: os.Getpid(), Seed: cfg.Agent.Seed, Log: log}
	for _, p := range cfg.Agent.Protect {
		re, err := regexp.Compile(p)
		if err != nil {
			return env, fmt.Errorf("agent.protect %q: %w", p, err)
		}
		env.Protect = append(env.Protect, re)
	}
	if cfg.Agent.ListenEnabled() {
		if _, port, err := net.SplitHostPort(cfg.Agent.Listen); err == nil {
			env.ListenPort, _ = strconv.Atoi(port)
		}
	}
	return env.WithDefaults(), nil
}

// newLogger logs JSON when stderr is not a terminal (a pod), text when it is.
func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Agent.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Agent.LogFormat
	if format == "" || format == "auto" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// newRunner opens cfg's journal (exclusively) and builds a runner on it, for the commands that
// act on the system outside `run` (fire, recover). The caller closes the journal.
func newRunner(cfg *config.Config) (*runner.Runner, *journal.Journal, *slog.Logger, error) {
	j, err := openJournal(cfg.Journal.Path)
	if err != nil {
		return nil, nil, nil, err
	}
	r, log, err := runnerOn(cfg, j)
	if err != nil {
		j.Close()
		return nil, nil, nil, err
	}
	return r, j, log, nil
}

// runnerOn builds a runner for cfg on the journal j, opened by the caller.
func runnerOn(cfg *config.Config, j *journal.Journal) (*runner.Runner, *slog.Logger, error) {
	log := newLogger(cfg)
	warnDamaged(log, j)
	env, err := faultEnv(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	r, err := runner.New(runner.Options{Config: cfg, Journal: j, Metrics: metrics.New(version), Log: log, Env: env, Agent: newAgent()})
	return r, log, err
}

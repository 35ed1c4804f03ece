package process

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"golang.org/x/sys/unix"
)

const (
	actionKill = "kill"
	actionStop = "stop"

	defaultGrace = 5 * time.Second
	// maxGrace bounds how long Inject of a kill can block: every fault has a maximum duration.
	maxGrace = 5 * time.Minute
)

// config is the validated parameters.
type config struct {
	// Matchers; nil/zero when not set. Every one that is set must match (AND).
	name    *textMatch
	cmdline *regexp.Regexp
	exe     string
	user    string // a user name or a numeric uid, resolved in Plan
	pidfile string
	port    int

	all           bool          // count: all
	count         int           // how many of the matches, when !all and percent == 0
	percent       fault.Percent // share of the matches, 0 when count is used
	ignoreMissing bool

	action string
	signal unix.Signal   // kill: the first signal
	grace  time.Duration // kill: how long the first signal has before SIGKILL
}

type params struct {
	Name          *string        `param:"name"`
	Cmdline       *string        `param:"cmdline"`
	Exe           *string        `param:"exe"`
	Pidfile       *string        `param:"pidfile"`
	Port          *int           `param:"port"`
	Percent       *fault.Percent `param:"percent"`
	IgnoreMissing bool           `param:"ignore_missing"`
	Action        *string        `param:"action"`
	Grace         *time.Duration `param:"grace"`
	// A number or a word: read below, with fault.WholeNumber for the number.
	Count  any `param:"count"`
	User   any `param:"user"`
	Signal any `param:"signal"`
}

const (
	keyCount  = "count"
	keyUser   = "user"
	keySignal = "signal"
)

func parseParams(p fault.Params) (config, error) {
	var ps params
	errs := fault.Errors(fault.FieldErrors(fault.Decode(p, &ps)))

	c := config{count: 1, action: actionKill, signal: unix.SIGTERM, grace: defaultGrace}
	matchers := 0
	if ps.Name != nil {
		matchers++
		m, err := parseTextMatch(*ps.Name)
		if err != nil {
			errs.Add("name", err.Error())
		}
		c.name = m
	}
	if ps.Cmdline != nil {
		matchers++
		switch re, err := regexp.Compile(*ps.Cmdline); {
		case *ps.Cmdline == "":
			errs.Add("cmdline", "must not be empty (a regular expression over the command line)")
		case err != nil:
			errs.Add("cmdline", "not a regular expression: "+err.Error())
		default:
			c.cmdline = re
		}
	}
	if ps.Exe != nil {
		matchers++
		c.exe = *ps.Exe
		switch {
		case c.exe == "":
			errs.Add("exe", "must not be empty")
		case strings.Contains(c.exe, "/") && !filepath.IsAbs(c.exe):
			errs.Add("exe", "a path must be absolute (or give the bare file name)")
		}
	}
	if v := ps.User; v != nil {
		matchers++
		switch x := v.(type) {
		case string:
			c.user = strings.TrimSpace(x)
		default:
			if n, ok := fault.WholeNumber(v); ok && n >= 0 && n <= math.MaxUint32 {
				c.user = strconv.FormatInt(n, 10)
			}
		}
		if c.user == "" {
			errs.Add(keyUser, "expected a user name or a numeric uid, got "+fault.Describe(v))
		}
	}
	if ps.Pidfile != nil {
		matchers++
		c.pidfile = *ps.Pidfile
		if !filepath.IsAbs(c.pidfile) {
			errs.Add("pidfile", "must be an absolute path")
		}
	}
	if ps.Port != nil {
		matchers++
		c.port = *ps.Port
		if c.port < 1 || c.port > 65535 {
			errs.Add("port", "must be a TCP port, 1 to 65535")
		}
	}
	if matchers == 0 {
		errs.Add("", "set at least one of name, cmdline, exe, user, pidfile, port to say which processes")
	}

	if v := ps.Count; v != nil {
		if ps.Percent != nil {
			errs.Add(keyCount, "set either count or percent, not both")
		}
		if s, isStr := v.(string); isStr && strings.EqualFold(strings.TrimSpace(s), "all") {
			c.all = true
		} else if n, ok := fault.WholeNumber(v); ok && n >= 1 && n <= math.MaxInt32 {
			c.count = int(n)
		} else {
			errs.Add(keyCount, "expected a number of processes (1 or more) or \"all\", got "+fault.Describe(v))
		}
	}
	if ps.Percent != nil {
		c.percent = *ps.Percent
		if c.percent <= 0 {
			errs.Add("percent", "must be above 0%")
		}
	}
	c.ignoreMissing = ps.IgnoreMissing

	if ps.Action != nil {
		c.action = strings.ToLower(strings.TrimSpace(*ps.Action))
		if c.action != actionKill && c.action != actionStop {
			errs.Add("action", fmt.Sprintf("expected kill or stop, got %q", *ps.Action))
		}
	}
	if v := ps.Signal; v != nil {
		if c.action != actionKill {
			errs.Add(keySignal, "only with action: kill (stop always sends SIGSTOP, and SIGCONT on revert)")
		} else if sig, err := parseSignal(v); err != nil {
			errs.Add(keySignal, err.Error())
		} else {
			c.signal = sig
		}
	}
	if ps.Grace != nil {
		c.grace = *ps.Grace
		switch {
		case c.action != actionKill:
			errs.Add("grace", "only with action: kill")
		case c.grace < 0:
			errs.Add("grace", "must not be negative")
		case c.grace > maxGrace:
			errs.Add("grace", "must be at most "+maxGrace.String())
		}
	}
	return c, errs.Err()
}

// textMatch is how name is matched: exactly, or as a regular expression when it is written
// between slashes, /like this/ (unanchored, as in pgrep: write ^…$ to anchor it).
type textMatch struct {
	exact string
	re    *regexp.Regexp
}

func parseTextMatch(s string) (*textMatch, error) {
	if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
		expr := s[1 : len(s)-1]
		if expr == "" {
			return nil, fmt.Errorf("the regular expression between the slashes is empty")
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("not a regular expression: %v", err)
		}
		return &textMatch{re: re}, nil
	}
	if s == "" {
		return nil, fmt.Errorf("must not be empty")
	}
	return &textMatch{exact: s}, nil
}

func (m *textMatch) match(s string) bool {
	if m.re != nil {
		return m.re.MatchString(s)
	}
	return s == m.exact
}

func (m *textMatch) String() string {
	if m.re != nil {
		return "/" + m.re.String() + "/"
	}
	return m.exact
}

// ignoredByDefault are signals that do not end a process that has no handler for them, so a
// kill with them would always end in SIGKILL: refused, to say so up front.
var ignoredByDefault = map[unix.Signal]string{
	unix.SIGSTOP:  "stops the process (use action: stop)",
	unix.SIGTSTP:  "stops the process (use action: stop)",
	unix.SIGTTIN:  "stops the process (use action: stop)",
	unix.SIGTTOU:  "stops the process (use action: stop)",
	unix.SIGCONT:  "does not end a process",
	unix.SIGCHLD:  "does not end a process",
	unix.SIGURG:   "does not end a process",
	unix.SIGWINCH: "does not end a process",
}

// parseSignal accepts "SIGTERM", "TERM", "sigterm", 15 and "15".
func parseSignal(v any) (unix.Signal, error) {
	var sig unix.Signal
	switch x := v.(type) {
	case string:
		s := strings.ToUpper(strings.TrimSpace(x))
		if n, err := strconv.Atoi(s); err == nil {
			sig = unix.Signal(n)
		} else {
			if !strings.HasPrefix(s, "SIG") {
				s = "SIG" + s
			}
			sig = unix.SignalNum(s)
		}
	default:
		if n, ok := fault.WholeNumber(v); ok && n > 0 && n < 65 {
			sig = unix.Signal(n)
		}
	}
	if sig <= 0 || unix.SignalName(sig) == "" {
		return 0, fmt.Errorf("expected a signal like SIGTERM, TERM or 15, got %s", fault.Describe(v))
	}
	if why, bad := ignoredByDefault[sig]; bad {
		return 0, fmt.Errorf("%s %s", unix.SignalName(sig), why)
	}
	return sig, nil
}

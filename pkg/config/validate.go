package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/schedule"
)

// namePattern is what an experiment name may look like: names become metric label values,
// journal keys and file names, so no spaces, slashes, capitals or leading punctuation.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// MaxNameLen is the longest name of an experiment, window or blackout: 63 characters,
// Kubernetes' limit for a label value. An experiment's name becomes a metric label; the
// others are logged and journaled with every skip, and a name is for people to read.
const MaxNameLen = 63

func nameTooLong(name string) string {
	return fmt.Sprintf("name %s is %d characters long; at most %d, like a Kubernetes label value",
		fault.Quote(name), utf8.RuneCountInString(name), MaxNameLen)
}

// validate checks the decoded config for everything decoding could not see: ranges,
// cross-references, cron expressions, regular expressions and each fault's own parameters.
// Paths decoding already reported are skipped, so one mistake gives one message.
func (r *report) validate(c *Config) {
	r.validateAgent(c)
	r.validateJournal(&c.Journal)
	r.validateAPI(c)
	r.validateFleet(c)
	r.validateWindows(c, "windows", c.Windows)
	r.validateWindows(c, "blackouts", c.Blackouts)
	r.validateExperiments(c)
}

// check adds a problem at p unless p already has one.
func (r *report) check(ok bool, p path, format string, args ...any) {
	if !ok && !r.reported(p) {
		r.add(p, format, args...)
	}
}

func (r *report) validateAgent(c *Config) {
	a := &c.Agent
	p := path{"agent"}
	if loc, err := time.LoadLocation(a.Timezone); err != nil {
		r.check(false, p.key("timezone"), "unknown time zone %q (examples: UTC, Local, Europe/Berlin)", a.Timezone)
	} else {
		c.loc = loc
	}
	r.check(a.MaxActive >= 1, p.key("max_active"), "must be at least 1, got %d", a.MaxActive)
	r.check(a.MaxDuration > 0, p.key("max_duration"), "must be above 0, got %s", fmtDuration(a.MaxDuration))
	if a.Listen != "" && a.Listen != ListenOff {
		r.check(validListen(a.Listen), p.key("listen"), "expected an address like \":8000\" or \"127.0.0.1:8000\", or \"off\", got %q", a.Listen)
	}
	for i, expr := range a.Protect {
		if _, err := regexp.Compile(expr); err != nil {
			r.check(false, p.key("protect").index(i), "invalid regular expression %q: %s", expr, regexpReason(err))
		}
	}
	r.check(slices.Contains([]string{"auto", "json", "text"}, a.LogFormat), p.key("log_format"),
		"expected auto, json or text, got %q", a.LogFormat)
	r.check(slices.Contains([]string{"debug", "info", "warn", "error"}, a.LogLevel), p.key("log_level"),
		"expected debug, info, warn or error, got %q", a.LogLevel)
	r.validateAbortIf(p.key("abort_if"), &a.AbortIf)
}

// validateAbortIf checks a stop condition and fills in the defaults of the keys not given.
func (r *report) validateAbortIf(p path, a *AbortIf) {
	if !r.present(p) || r.reported(p) {
		return
	}
	if a.HTTP == "" {
		r.check(false, p.key("http"), "missing: the URL to check while a fault is active, like http://localhost:8080/healthz")
		return
	}
	if u, err := url.Parse(a.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.check(false, p.key("http"), "expected an http:// or https:// URL with a host, got %q", a.HTTP)
	}
	if !r.present(p.key("expect_status")) {
		a.ExpectStatus = DefaultAbortStatus
	}
	r.check(a.ExpectStatus >= 100 && a.ExpectStatus <= 599, p.key("expect_status"), "expected an HTTP status code (100-599), got %d", a.ExpectStatus)
	if !r.present(p.key("timeout")) {
		a.Timeout = DefaultAbortTimeout
	}
	r.check(a.Timeout > 0, p.key("timeout"), "must be above 0, got %s", fmtDuration(a.Timeout))
	if !r.present(p.key("interval")) {
		a.Interval = DefaultAbortInterval
	}
	r.check(a.Interval > 0, p.key("interval"), "must be above 0, got %s", fmtDuration(a.Interval))
	if !r.present(p.key("failures")) {
		a.Failures = DefaultAbortFailures
	}
	r.check(a.Failures >= 1, p.key("failures"), "must be at least 1, got %d", a.Failures)
	if !r.present(p.key("max_trips")) {
		a.MaxTrips = DefaultAbortMaxTrips
	}
	r.check(a.MaxTrips >= 1, p.key("max_trips"), "must be at least 1, got %d", a.MaxTrips)
}

// validListen accepts what net.Listen("tcp", addr) would: host:port with a port number or
// service name; an empty host means every interface.
func validListen(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}

// regexpReason is regexp's complaint without the expression, which the caller quotes already.
func regexpReason(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return string(se.Code)
	}
	return err.Error()
}

func (r *report) validateJournal(j *Journal) {
	p := path{"journal"}
	r.check(strings.TrimSpace(j.Path) != "", p.key("path"), "must not be empty: without a journal nothing is injected")
	r.check(j.MaxRuns >= 0, p.key("max_runs"), "must be 0 (unbounded) or more, got %d", j.MaxRuns)
	r.check(j.MaxAge >= 0, p.key("max_age"), "must be 0 (unbounded) or more, got %s", fmtDuration(j.MaxAge))
}

func (r *report) validateWindows(c *Config, section string, ws map[string]Window) {
	for _, name := range sortedKeys(ws) {
		w := ws[name]
		p := path{section, name}
		if utf8.RuneCountInString(name) > MaxNameLen {
			r.check(false, p, "%s", nameTooLong(name))
		}
		r.validateSchedule(c, p.key("schedule"), w.Schedule)
		r.checkPositive(p.key("duration"), w.Duration, "how long the window stays open")
	}
}

func (r *report) validateSchedule(c *Config, p path, expr string) {
	if strings.TrimSpace(expr) == "" {
		r.check(false, p, "missing: a cron expression like \"*/5 * * * *\" or \"@every 10m\"")
		return
	}
	if _, err := schedule.Parse(expr, c.Location()); err != nil {
		r.check(false, p, "%v", err)
	}
}

// checkPositive checks a duration that must be set and above zero.
func (r *report) checkPositive(p path, d time.Duration, what string) {
	if !r.present(p) {
		r.check(false, p, "missing: %s, like 45s or 8h", what)
		return
	}
	r.check(d > 0, p, "must be above 0, got %s", fmtDuration(d))
}

func (r *report) validateExperiments(c *Config) {
	first := map[string]int{}   // name → index of its first use
	claimed := map[string]int{} // what a fault claims (fault.Claimer) → index of its first claimant
	for i := range c.Experiments {
		e := &c.Experiments[i]
		p := path{"experiments", i}
		if r.reported(p) {
			continue
		}
		switch {
		case e.Name == "":
			r.check(false, p.key("name"), "missing: every experiment needs a name")
		case utf8.RuneCountInString(e.Name) > MaxNameLen:
			r.check(false, p.key("name"), "%s", nameTooLong(e.Name))
		case !namePattern.MatchString(e.Name):
			r.check(false, p.key("name"), "%q is not a valid name: use lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", e.Name)
		default:
			if j, dup := first[e.Name]; dup {
				r.check(false, p.key("name"), "duplicate name %q (first used at %s)", e.Name, r.where(path{"experiments", j, "name"}))
			} else {
				first[e.Name] = i
			}
		}
		r.validateSchedule(c, p.key("schedule"), e.Schedule)
		r.check(e.Probability >= 0 && e.Probability <= 1, p.key("probability"),
			"must be between 0 and 1, got %s", strconv.FormatFloat(e.Probability, 'g', -1, 64))
		if e.Window != "" {
			if _, ok := c.Windows[e.Window]; !ok {
				r.check(false, p.key("window"), "unknown window %q (%s)", e.Window, definedWindows(c.Windows))
			}
		}
		r.check(e.Jitter >= 0, p.key("jitter"), "must not be negative, got %s", fmtDuration(e.Jitter))
		if e.Duration <= 0 {
			r.checkPositive(p.key("duration"), e.Duration, "how long the fault is held")
		} else {
			r.check(e.Duration <= c.Agent.MaxDuration, p.key("duration"), "%s is longer than agent.max_duration (%s)",
				fmtDuration(e.Duration), fmtDuration(c.Agent.MaxDuration))
		}
		r.check(e.Concurrency == ConcurrencyForbid || e.Concurrency == ConcurrencyAllow, p.key("concurrency"),
			"expected forbid or allow, got %q", e.Concurrency)
		f := r.validateFault(p.key("fault"), &e.Fault, listenPort(c.Agent))
		if cl, ok := f.(fault.Claimer); ok && !e.Disabled {
			for _, what := range cl.Claims() {
				if j, dup := claimed[what]; dup {
					r.check(false, p.key("fault"), "%s is faulted by experiment %q already (%s): two experiments may not fault it",
						what, c.Experiments[j].Name, r.where(path{"experiments", j, "fault"}))
				} else {
					claimed[what] = i
				}
			}
		}
		if r.present(p.key("abort_if")) {
			r.validateAbortIf(p.key("abort_if"), &e.AbortIf)
		} else {
			e.AbortIf = c.Agent.AbortIf
		}
	}
}

func definedWindows(ws map[string]Window) string {
	if len(ws) == 0 {
		return "no windows are defined"
	}
	names := sortedKeys(ws)
	for i, n := range names {
		if len(n) > fault.EchoMax {
			names[i] = fault.Quote(n)
		}
	}
	return "defined: " + strings.Join(names, ", ")
}

// where names a config path for a message: its line, or the path when it has none.
func (r *report) where(p path) string {
	if line, _, _ := locate(r.root, p); line > 0 {
		return fmt.Sprintf("line %d", line)
	}
	return p.String()
}

// listenPort is the port of agent.listen, 0 when it is off or has none: faults refuse it
// (the agent's own API and metrics are never faulted) as the runner's do.
func listenPort(a Agent) int {
	if !a.ListenEnabled() {
		return 0
	}
	_, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// validateFault checks a fault's type and parameters and returns the fault built from them,
// nil if they are not valid.
func (r *report) validateFault(p path, f *Fault, listen int) fault.Fault {
	if r.reported(p) {
		return nil
	}
	known := strings.Join(fault.Types(), ", ")
	if !r.present(p) {
		r.check(false, p, "missing: every experiment needs a fault, e.g. {type: cpu} (known types: %s)", known)
		return nil
	}
	if f.Type == "" {
		r.check(false, p.key("type"), "missing: the kind of fault (known: %s)", known)
		return nil
	}
	if !fault.Known(f.Type) {
		r.check(false, p.key("type"), "unknown fault type %q (known: %s)", f.Type, known)
		return nil
	}
	// A factory only validates and builds; it must not touch the system, so validation may
	// call it. The runner builds its own, with the real environment.
	built, err := fault.New(f.Type, f.Params, fault.Env{ListenPort: listen})
	for _, fe := range fault.FieldErrors(err) {
		fp := p
		if fe.Key != "" {
			fp = append(slices.Clip(p), parseFaultKey(fe.Key)...)
		}
		r.check(false, fp, "%s", fe.Msg)
	}
	return built
}

// fmtDuration is time.Duration.String without the trailing zero units: "1h", not "1h0m0s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

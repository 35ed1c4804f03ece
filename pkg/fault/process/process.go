// Package process is the "process" fault: it kills processes, or stops them (SIGSTOP) until
// Revert resumes them (SIGCONT).
//
// Which processes (at least one matcher; several must all match):
//
//	name:    nginx        the process name, exactly: its comm (as ps shows it) or the base name
//	                      of argv[0] (which is not cut at 15 characters as comm is);
//	                      /ngin.*/ between slashes is a regular expression instead (unanchored,
//	                      as in pgrep: write /^nginx$/ to anchor it)
//	cmdline: "app\.py"    a regular expression searched in the command line, its arguments
//	                      joined by single spaces (always a regexp: no slashes); only its
//	                      first 4 KiB, as pkill -f (see maxMatchCmdline)
//	exe:     /usr/bin/x   the executable: an absolute path matches exactly, a bare name the
//	                      path's base name
//	user:    www-data     the effective user, by name or numeric uid
//	pidfile: /run/x.pid   the process whose pid the file holds
//	port:    8080         the process(es) with a socket listening on this TCP port (v4 or v6)
//
// How many: count (a number, default 1, or "all") or percent of the matches (rounded, at least
// one), chosen at random (seeded by the agent's seed when it has one). No match at all is an
// error from Plan, or a skip with ignore_missing: true.
//
// What:
//
//	action: kill          (default) signal, then SIGKILL after grace if the process still lives
//	signal: SIGTERM       (default) also TERM or 15
//	grace:  5s            (default) at most 5m
//	action: stop          SIGSTOP now, SIGCONT on Revert
//
// Some processes are never touched, whatever the parameters say: PID 1 (init, or the pause
// container of a pod), the agent (Env.Self, and the process running this code), its ancestors
// and descendants, every other chaoscron process (known by its executable's Go build info, not
// by its name: see agentPackage), kernel threads, processes matching agent.protect, and, for
// stop, processes someone else has already stopped.
//
// Everything is decided in Plan, which touches nothing: the undo names each target by pid,
// start time (clock ticks since boot, exact) and create time (ms since the epoch, for people)
// plus its command line, under the boot id. Right before every signal the live process is
// checked against that, so a pid that was reused is never signalled; Revert does the same, so
// it can resume stopped processes from the undo alone, in an agent that never ran Inject.
// Pids only mean something in the pid namespace they were read in, so Inject and Revert refuse
// to signal unless Env.Proc is the procfs of the agent's own pid namespace.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/unix"
)

func init() { fault.Register("process", New) }

// Fault is a configured process fault.
type Fault struct {
	cfg config
	env fault.Env
}

var (
	_ fault.Fault     = (*Fault)(nil)
	_ fault.Describer = (*Fault)(nil)
)

// New validates params; it touches nothing (a user name is looked up in Plan).
func New(p fault.Params, env fault.Env) (fault.Fault, error) {
	cfg, err := parseParams(p)
	if err != nil {
		return nil, err
	}
	return &Fault{cfg: cfg, env: env.WithDefaults()}, nil
}

// Describe says what the fault will do, for logs and dry runs.
func (f *Fault) Describe() string {
	c := &f.cfg
	var how string
	switch {
	case c.percent > 0:
		how = c.percent.String() + " of the processes"
	case c.all:
		how = "every process"
	case c.count == 1:
		how = "1 process"
	default:
		how = strconv.Itoa(c.count) + " processes"
	}
	if c.action == actionStop {
		return "stop " + how + " matching " + f.matchers() + " until revert"
	}
	then := ", then SIGKILL after " + c.grace.String()
	if c.signal == unix.SIGKILL {
		then = ""
	}
	return "kill " + how + " matching " + f.matchers() + " (" + unix.SignalName(c.signal) + then + ")"
}

func (f *Fault) matchers() string {
	c := &f.cfg
	var m []string
	if c.name != nil {
		m = append(m, "name="+c.name.String())
	}
	if c.cmdline != nil {
		m = append(m, "cmdline=/"+c.cmdline.String()+"/")
	}
	if c.exe != "" {
		m = append(m, "exe="+c.exe)
	}
	if c.user != "" {
		m = append(m, "user="+c.user)
	}
	if c.pidfile != "" {
		m = append(m, "pidfile="+c.pidfile)
	}
	if c.port != 0 {
		m = append(m, "port="+strconv.Itoa(c.port))
	}
	return strings.Join(m, " and ")
}

// undo is the plan and the undo of both actions.
type undo struct {
	Run    string `json:"run"`
	Action string `json:"action"`
	Signal string `json:"signal,omitempty"` // kill: the first signal
	Grace  string `json:"grace,omitempty"`  // kill: before SIGKILL
	// BootID (/proc/sys/kernel/random/boot_id) scopes the pids and start times: after a
	// reboot none of the targets can exist any more.
	BootID  string   `json:"boot_id,omitempty"`
	Targets []target `json:"targets"`
}

type target struct {
	Pid        int    `json:"pid"`
	CreateTime int64  `json:"create_time"`           // ms since the epoch
	StartTicks uint64 `json:"start_ticks,omitempty"` // field 22 of /proc/<pid>/stat
	Cmdline    string `json:"cmdline"`

	// Set by Inject.
	Result    string  `json:"result,omitempty"`     // see the result constants
	Signal    string  `json:"signal,omitempty"`     // kill: the last signal sent before it ended
	ElapsedMS float64 `json:"elapsed_ms,omitempty"` // kill: from the first signal until it had ended
	Note      string  `json:"note,omitempty"`       // why it was gone, or what went wrong
}

// Results of Inject, per target.
const (
	resultEnded   = "ended"   // kill: the process has exited (Signal says which signal did it)
	resultAlive   = "alive"   // kill: still there after SIGKILL (stuck in the kernel) or cancelled
	resultStopped = "stopped" // stop: SIGSTOP sent
	resultResumed = "resumed" // stop: stopped, then resumed because another target could not be
	resultGone    = "gone"    // exited before it was signalled, or its pid is another process's now
	resultError   = "error"   // the signal could not be sent (Note says why)
)

func decodeUndo(raw fault.Undo) (undo, error) {
	var u undo
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, fmt.Errorf("process: malformed undo: %w", err)
	}
	if u.Action != actionKill && u.Action != actionStop {
		return u, fmt.Errorf("process: malformed undo: action %q", u.Action)
	}
	return u, nil
}

// maxListed bounds the protected processes named in an error.
const maxListed = 5

// Plan finds the processes, checks each may be touched, chooses among them and names each
// chosen one in the undo. It sends no signal.
func (f *Fault) Plan(ctx context.Context, run string) (fault.Undo, error) {
	s, err := newScanner(ctx, &f.cfg, f.env)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	cands, why, err := s.find()
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	if len(s.protected) > 0 {
		f.env.Log.Info("process: matching processes left alone", "run", run, "protected", s.protected)
	}
	if len(cands) == 0 {
		msg := "no process matched " + f.matchers()
		switch {
		case why != "":
			msg += ": " + why
		case f.cfg.pidfile != "" && len(s.protected) == 0:
			msg += ": the pid it holds is not running, or is not a match"
		default:
			msg += fmt.Sprintf(" among %d processes", s.scanned)
		}
		if n := len(s.protected); n > 0 {
			msg += "; these matched but are protected: " + strings.Join(s.protected[:min(n, maxListed)], ", ")
			if n > maxListed {
				msg += fmt.Sprintf(" and %d more", n-maxListed)
			}
		}
		if f.cfg.ignoreMissing {
			return nil, fmt.Errorf("process: %s: %w", msg, fault.ErrSkip)
		}
		return nil, errors.New("process: " + msg)
	}

	u := undo{Run: run, Action: f.cfg.action, BootID: readBootID(f.env.Proc)}
	if f.cfg.action == actionKill {
		u.Signal = unix.SignalName(f.cfg.signal)
		u.Grace = f.cfg.grace.String()
	}
	ctx = psContext(ctx, f.env.Proc)
	for _, c := range choose(cands, &f.cfg, f.env.Seed) {
		// The create time only for the chosen: it costs gopsutil another read of stat.
		ct, _ := (&process.Process{Pid: int32(c.pid)}).CreateTimeWithContext(ctx)
		u.Targets = append(u.Targets, target{Pid: c.pid, CreateTime: ct, StartTicks: c.startTicks, Cmdline: shorten(c.cmdline)})
	}
	return json.Marshal(u)
}

// Inject signals the targets of plan. A kill blocks until every target has ended, or has
// been sent SIGKILL after the grace period and that has ended it (or a further bound passed);
// the undo it returns says per target which signal ended it and after how long. A stop
// returns once SIGSTOP has been sent to every target; if one cannot be stopped, those already
// stopped are resumed and Inject fails.
func (f *Fault) Inject(ctx context.Context, plan fault.Undo) (fault.Undo, error) {
	u, err := decodeUndo(plan)
	if err != nil {
		return nil, err
	}
	switch same, err := f.sameBoot(&u); {
	case err != nil:
		return nil, fmt.Errorf("process: %w", err)
	case !same:
		return nil, fmt.Errorf("process: the plan was made before the machine rebooted: its processes are gone")
	}
	if u.Action == actionKill {
		err = f.kill(ctx, &u)
	} else {
		err = f.stop(ctx, &u)
	}
	out, merr := json.Marshal(u)
	if merr != nil {
		return plan, errors.Join(err, merr)
	}
	return out, err
}

// Revert reverses a stop: see resume. A kill has nothing to reverse (its processes are gone;
// restarting them is their supervisor's job), so Revert of a kill is a no-op.
func (f *Fault) Revert(ctx context.Context, raw fault.Undo) error {
	u, err := decodeUndo(raw)
	if err != nil {
		return err
	}
	if u.Action == actionKill {
		return nil
	}
	if err := f.resume(ctx, &u); err != nil {
		return fmt.Errorf("process: resume: %w", err)
	}
	return nil
}

// sameBoot checks that u's pids can still mean anything: that this procfs is the agent's own
// (see checkOwnProcfs) and that the machine has not rebooted since u was planned.
func (f *Fault) sameBoot(u *undo) (bool, error) {
	if err := checkOwnProcfs(f.env.Proc); err != nil {
		return false, err
	}
	now := readBootID(f.env.Proc)
	return u.BootID == "" || now == "" || now == u.BootID, nil
}

// maxCmdline bounds the command line kept in the journal: it is for people, and some (a Java
// class path) run to many kilobytes, which count: all would multiply.
const maxCmdline = 512

func shorten(s string) string {
	if len(s) <= maxCmdline {
		return s
	}
	return prefix(s, maxCmdline) + "…"
}

package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/chaoscron/chaoscron/journal"
	"github.com/chaoscron/chaoscron/pkg/api"
)

// agentState is what `next -c` needs from the journal besides the config: the halt switch and
// the paused experiments. Unknown says why they could not be read ("" when they were).
type agentState struct {
	Halted  bool
	Paused  map[string]journal.Pause
	Unknown string
}

// readAgentState reads the halt switch and pause flags from the journal file, read-only; while
// an agent holds the file it asks that agent over its socket. A journal that does not exist
// yet holds no switch. Anything else is reported in Unknown rather than failing the preview:
// the schedule is still worth seeing, as long as the output says what it could not check.
func (o *configFlags) readAgentState(fs *pflag.FlagSet) agentState {
	path, err := o.journalPath(fs)
	if err != nil {
		return agentState{Unknown: err.Error()}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return agentState{}
	}
	var st journal.Stats
	j, err := journal.Open(path, journal.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	switch {
	case err == nil:
		defer j.Close()
		halted, _, _, herr := j.Halted()
		paused, perr := j.Paused()
		if err := errors.Join(herr, perr); err != nil {
			return agentState{Unknown: err.Error()}
		}
		return agentState{Halted: halted, Paused: paused}
	case errors.Is(err, journal.ErrLocked):
		cl := api.NewClient(api.SocketPath(path))
		defer cl.Close()
		if st, err = cl.Stats(); err != nil {
			return agentState{Unknown: fmt.Sprintf("journal %s is held by a running agent, and its socket did not answer: %v", path, err)}
		}
		return agentState{Halted: st.Halted, Paused: st.Paused}
	}
	return agentState{Unknown: err.Error()}
}

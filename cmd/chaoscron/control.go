package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
	"github.com/chaoscron/chaoscron/pkg/runner"
)

// control adapts the runner to the API's Control interface: the API declares what it needs
// and never imports the runner.
type control struct{ r *runner.Runner }

var _ api.Control = control{}

func (c control) Experiments() []api.Experiment {
	infos := c.r.Experiments()
	out := make([]api.Experiment, 0, len(infos))
	for _, e := range infos {
		out = append(out, api.Experiment{Name: e.Name, Fault: e.Fault, Schedule: e.Schedule, Window: e.Window,
			Paused: e.Paused, Active: e.Active, NextFire: e.NextFire})
	}
	return out
}

func (c control) Fire(ctx context.Context, name string) (uint64, error) {
	id, err := c.r.Fire(ctx, name, runner.TriggerAPI, time.Time{})
	return id, apiError(err)
}

func (c control) SetPaused(name string, paused bool) error {
	return apiError(c.r.SetPaused(name, paused))
}

func (c control) Halt(ctx context.Context, reason string) (int, error) {
	return c.r.HaltWait(ctx, reason)
}

func (c control) Resume() error { return c.r.Resume() }
func (c control) Halted() bool  { return c.r.Halted() }

// apiError maps the runner's errors onto the ones the API knows.
func apiError(err error) error {
	var skip *runner.SkipError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runner.ErrUnknown):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.As(err, &skip):
		return &api.Refused{Reason: skip.Reason, Detail: skip.Detail}
	}
	return err
}

// apiToken is the bearer token for mutating calls on the network listener: the contents of
// api.token_file, else the variable api.token_env names. "" means none: the network
// listener then serves no /v1 routes at all. A token file others can read or change, or a
// token under 16 bytes, is an error (see config.API.Token).
func apiToken(cfg *config.Config) (string, error) {
	return cfg.API.Token(os.Getenv)
}

// serveSocket serves h on the unix socket next to the journal until the returned server is
// closed, which also removes the socket file.
func serveSocket(journalPath string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	path := api.SocketPath(journalPath)
	ln, err := api.ListenSocket(path)
	if err != nil {
		return nil, err
	}
	// Its own cap, apart from the network listener's: a flood there never takes the
	// connection a halt on the socket needs.
	srv := api.NewServer(h)
	ln = api.LimitConns(ln, api.SocketConns)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("socket server stopped", "err", err)
		}
	}()
	log.Info("serving the API on the journal's socket", "socket", path)
	return srv, nil
}

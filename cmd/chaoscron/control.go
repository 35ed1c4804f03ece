package main

import (
	"errors"
	"log/slog"
	"net/http"
	"os"

	"github.com/chaoscron/chaoscron/pkg/api"
	"github.com/chaoscron/chaoscron/pkg/config"
)

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

package request

import (
	"context"
	"log/slog"
	"net"

	"github.com/chaoscron/chaoscron/pkg/fault/request/proxy"
)

// server is what the fault needs of the proxy.
type server interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
}

// dialFunc opens the connection to the app for one accepted client connection.
type dialFunc func(ctx context.Context, client net.Conn) (net.Conn, error)

// newServer builds the proxy for a run.
func newServer(r rule, seed uint64, dial dialFunc, observe func(string), log *slog.Logger) (server, error) {
	return proxy.New(proxy.Rule{
		Methods: r.Methods, Path: r.Path, PathRE: r.PathRE, Headers: r.Headers,
		Percent: r.Percent, Abort: r.Abort, GRPC: r.GRPC, Delay: r.Delay, Jitter: r.Jitter,
		Seed: seed,
	}, proxy.Options{Dial: dial, Observe: observe, Log: log})
}

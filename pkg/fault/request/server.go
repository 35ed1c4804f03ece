package request

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
)

// server is what the fault needs of the proxy.
type server interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
}

// dialFunc opens the connection to the app for one accepted client connection.
type dialFunc func(ctx context.Context, client net.Conn) (net.Conn, error)

// newServer builds the proxy for a run.
var newServer = func(r rule, seed uint64, dial dialFunc, observe func(string), log *slog.Logger) (server, error) {
	return &forwarder{dial: dial, conns: map[net.Conn]struct{}{}}, nil
}

// forwarder passes every connection through unchanged.
type forwarder struct {
	dial  dialFunc
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (f *forwarder) Serve(ln net.Listener) error {
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			return net.ErrClosed
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			up, err := f.dial(context.Background(), c)
			if err != nil {
				return
			}
			defer up.Close()
			f.mu.Lock()
			f.conns[c] = struct{}{}
			f.mu.Unlock()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
		}()
	}
}

func (f *forwarder) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	if f.ln != nil {
		f.ln.Close()
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

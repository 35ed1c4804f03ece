package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/journal"
)

// TestExportOutlastsWriteTimeout: the server's write timeout cuts a client that stops
// reading, but not an export that takes longer than it to a client that keeps reading.
// The reader is slow enough that the server waits for it, as a long export over a real
// network does.
func TestExportOutlastsWriteTimeout(t *testing.T) {
	defer func(d time.Duration) { writeTimeout = d }(writeTimeout)
	writeTimeout = 500 * time.Millisecond
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const runs = 10000
	for range runs {
		r := journal.Record{Experiment: "e", Fault: "disk", Trigger: "schedule", Status: journal.Succeeded,
			Cleanup: journal.CleanupDone, Params: json.RawMessage(`{"path":"/tmp","size":"1MiB"}`), StartedAt: time.Now().UTC()}
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
	srv := NewServer(Handler(Options{Local: true, Journal: j}))
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
		return ctx
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/v1/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	// Read 16 KiB every 10 ms: far slower than the agent writes, never stopped for long.
	br := bufio.NewReaderSize(slowReader{resp.Body}, 16<<10)
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			break
		}
		if err != nil || !strings.HasPrefix(line, `{"id":`) {
			t.Fatalf("after %d lines and %v: %q, %v", n, time.Since(start), line, err)
		}
		n++
	}
	took := time.Since(start)
	if n != runs {
		t.Fatalf("export: %d lines in %v, want %d", n, took, runs)
	}
	if took < 2*writeTimeout {
		t.Fatalf("export took %v, not longer than the write timeout (%v): the test proves nothing", took, writeTimeout)
	}
	t.Logf("export of %d runs over %v with a write timeout of %v", n, took.Round(time.Millisecond), writeTimeout)
}

type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 16<<10)])
}

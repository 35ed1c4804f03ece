package proxy

//lint:file-ignore SA1019 x/net/http2 serves one given connection (ServeConn) and sends requests over one given connection (NewClientConn); net/http's own HTTP/2 serves listeners and dials for itself, and the proxy needs exactly one upstream connection per client connection.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
)

// HTTP/2 (h2c with prior knowledge, which is how gRPC speaks in the clear): the client side is
// served by an http2.Server on the accepted connection, and each request goes on as a stream of
// one http2.ClientConn over the connection's own upstream connection, so the app still sees one
// connection per client connection. Trailers (gRPC's status) are forwarded after the body.

// bufConn reads through r, which may hold bytes already sniffed; pending, if not nil, is a
// read on r still under way from the sniffing, awaited before the first Read.
type bufConn struct {
	net.Conn
	r       *bufio.Reader
	pending chan error
}

func (b *bufConn) Read(p []byte) (int, error) {
	if b.pending != nil {
		<-b.pending
		b.pending = nil
	}
	return b.r.Read(p)
}

func (c *conn) serveHTTP2(cr, ur *bufio.Reader, upFirst chan error) {
	cc, err := c.p.h2t.NewClientConn(&bufConn{Conn: c.up, r: ur, pending: upFirst})
	if err != nil {
		c.p.log.Warn("proxy: http2 to the app", "err", err)
		return
	}
	defer cc.Close()
	c.p.h2.ServeConn(&bufConn{Conn: c.client, r: cr}, &http2.ServeConnOpts{
		Context:    c.p.ctx,
		BaseConfig: c.p.hs,
		Handler:    &h2handler{p: c.p, cc: cc},
	})
}

type h2handler struct {
	p  *Proxy
	cc *http2.ClientConn
}

func isGRPC(contentType string) bool {
	return strings.HasPrefix(contentType, "application/grpc")
}

func (h *h2handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := h.p.m
	v := m.decide(r.Method, r.RequestURI, func(i int) (string, bool) {
		name := m.headers[i].name
		if name == "Host" {
			return r.Host, r.Host != ""
		}
		vs := r.Header.Values(name)
		return strings.Join(vs, ", "), len(vs) > 0
	})
	if v.delay > 0 && !sleep(r.Context(), v.delay) {
		return
	}
	if v.abort {
		h.abort(w, r)
		return
	}
	out := &http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: "http", Host: r.Host, Opaque: r.RequestURI},
		Header:        r.Header,
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Host:          r.Host,
		Trailer:       r.Trailer,
	}
	if r.ContentLength == 0 {
		out.Body = nil // END_STREAM on the headers, as the client sent it
	}
	res, err := h.cc.RoundTrip(out.WithContext(r.Context()))
	if err != nil {
		h.p.log.Debug("proxy: http2 round trip", "err", err)
		if isGRPC(r.Header.Get("Content-Type")) {
			grpcStatus(w, 14, "proxy: "+err.Error())
			return
		}
		http.Error(w, "proxy: the app did not answer", http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	hd := w.Header()
	for k, vv := range res.Header {
		hd[k] = vv
	}
	for k := range res.Trailer {
		hd.Add("Trailer", k)
	}
	w.WriteHeader(res.StatusCode)
	// Each piece goes out as it comes (gRPC streams); the headers go with the first piece,
	// or with the end of the stream when there is none (a gRPC trailers-only answer must stay
	// one HEADERS frame).
	f := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			f.Flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(http.ErrAbortHandler) // reset the stream: the client must not see a clean end
		}
	}
	for k, vv := range res.Trailer {
		hd[http.TrailerPrefix+k] = vv
	}
}

// abort answers an aborted request: a gRPC one as Envoy's fault filter does (HTTP 200, a
// trailers-only answer with grpc-status), any other with the rule's HTTP status.
func (h *h2handler) abort(w http.ResponseWriter, r *http.Request) {
	if isGRPC(r.Header.Get("Content-Type")) {
		grpcStatus(w, h.p.m.rule.grpcStatus(), abortBody)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/plain")
	hd.Set("Content-Length", strconv.Itoa(len(abortBody)))
	w.WriteHeader(h.p.m.rule.httpStatus())
	if r.Method != http.MethodHead {
		io.WriteString(w, abortBody)
	}
}

func grpcStatus(w http.ResponseWriter, code int, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", "application/grpc")
	hd.Set("Grpc-Status", strconv.Itoa(code))
	hd.Set("Grpc-Message", url.PathEscape(msg))
	w.WriteHeader(http.StatusOK)
}

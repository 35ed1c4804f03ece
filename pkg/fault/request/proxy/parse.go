package proxy

import (
	"bytes"
	"errors"
	"strconv"
)

// The HTTP/1 parser reads only what the proxy needs to frame a message and match a rule; the
// bytes themselves are forwarded as they came. Anything it is not sure of is an error, and an
// error turns the rest of the connection into a plain TCP splice: a message the proxy cannot
// frame exactly must never be faulted, nor broken.

// errIncomplete: the head is not all there yet; read more.
var errIncomplete = errors.New("incomplete head")

var errNotHTTP = errors.New("not an HTTP/1 message")

// maxRuleHeaders bounds the header conditions a rule can have (their values are kept per
// request without an allocation).
const maxRuleHeaders = 8

// reqHead is what the proxy needs of one HTTP/1.x request head.
type reqHead struct {
	n       int // bytes of the head, the blank line included
	method  []byte
	target  []byte
	minor   byte  // HTTP/1.minor
	chunked bool  // Transfer-Encoding ends in chunked
	length  int64 // Content-Length; 0 without one
	close   bool  // the client will close after this request's answer
	upgrade bool  // an Upgrade (WebSocket, h2c) or CONNECT: the connection may become a tunnel
	expect  bool  // Expect: 100-continue
	vals    [maxRuleHeaders][]byte
	has     [maxRuleHeaders]bool
}

// respHead is what the proxy needs of one HTTP/1.x response head.
type respHead struct {
	n       int
	status  int
	chunked bool
	length  int64 // -1: none (read until close, unless the status has no body)
	close   bool
}

// headEnd returns the length of the head at the start of b (through its blank line), or -1.
// It checks the first line as soon as it is complete, so that a line protocol that merely
// starts like HTTP is given up at once rather than waited on. first checks that line.
func headEnd(b []byte, first func([]byte) bool) (int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return -1, errIncomplete
	}
	if !first(trimCR(b[:i])) {
		return -1, errNotHTTP
	}
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '\n')
		if k < 0 {
			return -1, errIncomplete
		}
		if len(trimCR(b[j:j+k])) == 0 {
			return j + k + 1, nil
		}
		j += k + 1
	}
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// requestLine splits "METHOD SP target SP HTTP/1.x".
func requestLine(l []byte) (method, target []byte, minor byte, ok bool) {
	sp := bytes.IndexByte(l, ' ')
	if sp <= 0 {
		return nil, nil, 0, false
	}
	method, rest := l[:sp], l[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return nil, nil, 0, false
	}
	target, v := rest[:sp], rest[sp+1:]
	if len(v) != 8 || string(v[:7]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return nil, nil, 0, false
	}
	for _, c := range method {
		if !tchar[c] {
			return nil, nil, 0, false
		}
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return nil, nil, 0, false
		}
	}
	return method, target, v[7] - '0', true
}

func isRequestLine(l []byte) bool { _, _, _, ok := requestLine(l); return ok }

// statusLine parses "HTTP/1.x SP 3DIGIT [SP reason]".
func statusLine(l []byte) (status int, minor byte, ok bool) {
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || l[8] != ' ' || (len(l) > 12 && l[12] != ' ') {
		return 0, 0, false
	}
	for _, c := range l[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		status = status*10 + int(c-'0')
	}
	return status, l[7] - '0', status >= 100
}

func isStatusLine(l []byte) bool { _, _, ok := statusLine(l); return ok }

// fields calls f for each header field of a complete head (after its first line).
func fields(head []byte, f func(name, value []byte) error) error {
	i := bytes.IndexByte(head, '\n') + 1
	for i < len(head) {
		k := bytes.IndexByte(head[i:], '\n')
		line := trimCR(head[i : i+k])
		i += k + 1
		if len(line) == 0 {
			return nil
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			return errNotHTTP // obsolete folding, or no name
		}
		name := line[:c]
		for _, ch := range name {
			if !tchar[ch] {
				return errNotHTTP
			}
		}
		if err := f(name, bytes.Trim(line[c+1:], " \t")); err != nil {
			return err
		}
	}
	return nil
}

// parseRequest parses the request head at the start of b. names are the rule's header
// names, whose values it keeps.
func parseRequest(b []byte, names []header) (h reqHead, err error) {
	h.n, err = headEnd(b, isRequestLine)
	if err != nil {
		return h, err
	}
	head := b[:h.n]
	h.method, h.target, h.minor, _ = requestLine(trimCR(head[:bytes.IndexByte(head, '\n')]))
	var keepAlive, connUpgrade, hasUpgrade, hasTE bool
	h.length = -1
	err = fields(head, func(name, v []byte) error {
		switch {
		case equalFold(name, "content-length"):
			n, err := contentLength(v)
			if err != nil || (h.length >= 0 && n != h.length) {
				return errNotHTTP
			}
			h.length = n
		case equalFold(name, "transfer-encoding"):
			hasTE = true
			h.chunked = lastToken(v, "chunked")
		case equalFold(name, "connection"):
			eachToken(v, func(t []byte) {
				switch {
				case equalFold(t, "close"):
					h.close = true
				case equalFold(t, "keep-alive"):
					keepAlive = true
				case equalFold(t, "upgrade"):
					connUpgrade = true
				}
			})
		case equalFold(name, "upgrade"):
			hasUpgrade = true
		case equalFold(name, "expect"):
			h.expect = equalFold(v, "100-continue")
		}
		for i := range names {
			if equalFold(name, names[i].name) {
				if h.has[i] {
					h.vals[i] = append(append(h.vals[i], ", "...), v...)
				} else {
					h.vals[i], h.has[i] = v, true
				}
			}
		}
		return nil
	})
	if err != nil {
		return h, err
	}
	if hasTE && (!h.chunked || h.length >= 0) {
		// A body framed by something else than chunked, or by both: the app and the proxy
		// could disagree on where it ends (request smuggling), so leave it to the app.
		return h, errNotHTTP
	}
	if h.chunked || h.length < 0 {
		h.length = 0
	}
	if h.minor == 0 && !keepAlive {
		h.close = true
	}
	h.upgrade = (hasUpgrade && connUpgrade) || string(h.method) == "CONNECT"
	return h, nil
}

// parseResponse parses the response head at the start of b.
func parseResponse(b []byte) (h respHead, err error) {
	h.n, err = headEnd(b, isStatusLine)
	if err != nil {
		return h, err
	}
	head := b[:h.n]
	var minor byte
	h.status, minor, _ = statusLine(trimCR(head[:bytes.IndexByte(head, '\n')]))
	var keepAlive, hasTE bool
	h.length = -1
	err = fields(head, func(name, v []byte) error {
		switch {
		case equalFold(name, "content-length"):
			n, err := contentLength(v)
			if err != nil || (h.length >= 0 && n != h.length) {
				return errNotHTTP
			}
			h.length = n
		case equalFold(name, "transfer-encoding"):
			hasTE = true
			h.chunked = lastToken(v, "chunked")
		case equalFold(name, "connection"):
			eachToken(v, func(t []byte) {
				if equalFold(t, "close") {
					h.close = true
				} else if equalFold(t, "keep-alive") {
					keepAlive = true
				}
			})
		}
		return nil
	})
	if err != nil {
		return h, err
	}
	if hasTE {
		h.length = -1 // chunked, or else read until close (RFC 9112 §6.3)
		if !h.chunked {
			h.close = true
		}
	}
	if minor == 0 && !keepAlive {
		h.close = true
	}
	return h, nil
}

func contentLength(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, errNotHTTP
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errNotHTTP
		}
	}
	return strconv.ParseInt(string(v), 10, 64)
}

func eachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		t := v
		if i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if t = bytes.Trim(t, " \t"); len(t) > 0 {
			f(t)
		}
	}
}

// lastToken reports whether the last token of the list v is want.
func lastToken(v []byte, want string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(bytes.Trim(v, " \t"), want)
}

// equalFold compares ASCII case-insensitively (header names and tokens are ASCII).
func equalFold[S string | []byte](a []byte, b S) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if x, y := a[i], b[i]; x != y {
			if l := x | 0x20; l != y|0x20 || l < 'a' || l > 'z' {
				return false
			}
		}
	}
	return true
}

package proxy

// HTTP/1 message framing: where a head and a body end, read through a connection's buffer and
// copied unchanged.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// readHead reads until r holds a whole request head and parses it.
func readHead(r *bufio.Reader, names []header) (reqHead, error) {
	for {
		b, _ := r.Peek(r.Buffered())
		h, err := parseRequest(b, names)
		if err != errIncomplete {
			return h, err
		}
		if len(b) == r.Size() {
			return h, errNotHTTP // a head larger than the buffer
		}
		if _, err := r.Peek(len(b) + 1); err != nil {
			return h, err
		}
	}
}

// readRespHead reads until r holds a whole response head and parses it.
func readRespHead(r *bufio.Reader) (respHead, error) {
	for {
		b, _ := r.Peek(r.Buffered())
		h, err := parseResponse(b)
		if err != errIncomplete {
			return h, err
		}
		if len(b) == r.Size() {
			return h, errNotHTTP
		}
		if _, err := r.Peek(len(b) + 1); err != nil {
			return h, err
		}
	}
}

// writeClosing writes a response head with its Connection headers replaced by
// "Connection: close": the last answer of a connection being drained.
func writeClosing(w *bufio.Writer, head []byte) {
	i := bytes.IndexByte(head, '\n') + 1
	w.Write(head[:i])
	for i < len(head) {
		k := bytes.IndexByte(head[i:], '\n')
		line := head[i : i+k+1]
		i += k + 1
		t := trimCR(line[:len(line)-1])
		if len(t) == 0 {
			break
		}
		if c := bytes.IndexByte(t, ':'); c > 0 && (equalFold(t[:c], "connection") || equalFold(t[:c], "keep-alive")) {
			continue
		}
		w.Write(line)
	}
	w.WriteString("Connection: close\r\n\r\n")
}

// abortAnswer is the answer to an aborted HTTP/1 request.
func (p *Proxy) abortAnswer(noBody, close bool) []byte {
	i := 0
	if noBody {
		i |= 1
	}
	if close {
		i |= 2
	}
	return p.aborts[i]
}

// makeAborts renders the four abort answers for status.
func makeAborts(status int) (a [4][]byte) {
	for i := range a {
		var b bytes.Buffer
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n", status, http.StatusText(status), len(abortBody))
		if i&2 != 0 {
			b.WriteString("Connection: close\r\n")
		}
		b.WriteString("\r\n")
		if i&1 == 0 {
			b.WriteString(abortBody)
		}
		a[i] = b.Bytes()
	}
	return a
}

// body copies a message body framed by chunked or length from r to w, unchanged.
func body(w io.Writer, r *bufio.Reader, chunked bool, length int64) error {
	if !chunked {
		return copyN(w, r, length)
	}
	for {
		line, err := copyLine(w, r)
		if err != nil {
			return err
		}
		size, err := chunkSize(trimCR(line[:len(line)-1]))
		if err != nil {
			return err
		}
		if size == 0 {
			for { // trailer fields, then the blank line
				line, err := copyLine(w, r)
				if err != nil {
					return err
				}
				if len(trimCR(line[:len(line)-1])) == 0 {
					return nil
				}
			}
		}
		if err := copyN(w, r, size); err != nil {
			return err
		}
		line, err = copyLine(w, r)
		if err != nil {
			return err
		}
		if len(trimCR(line[:len(line)-1])) != 0 {
			return errNotHTTP
		}
	}
}

// copyLine copies one line, its newline included, and returns it (valid until r's next read).
func copyLine(w io.Writer, r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if len(line) > 0 {
		if _, err := w.Write(line); err != nil {
			return nil, err
		}
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errNotHTTP
	}
	return line, err
}

// chunkSize parses a chunk-size line (its extensions ignored).
func chunkSize(l []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(l); i++ {
		c := l[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			d = c | 0x20 - 'a' + 10
		default:
			goto end
		}
		if n > (1<<59)-1 {
			return 0, errNotHTTP
		}
		n = n<<4 | int64(d)
	}
end:
	if i == 0 || i < len(l) && l[i] != ';' && l[i] != ' ' && l[i] != '\t' {
		return 0, errNotHTTP
	}
	return n, nil
}

// copyN copies n bytes from r to w through r's buffer.
func copyN(w io.Writer, r *bufio.Reader, n int64) error {
	for n > 0 {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		b, _ := r.Peek(int(min(int64(r.Buffered()), n)))
		if _, err := w.Write(b); err != nil {
			return err
		}
		r.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

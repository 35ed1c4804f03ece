package proxy

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// HTTP/1: two loops per connection, one per direction, as a plain TCP relay has, so that a
// request body and its answer can stream at the same time (Expect: 100-continue, an app that
// answers before it has read everything). The request loop parses each request head, decides
// the fault and forwards the request; the answer loop takes the requests in order from a queue
// and forwards each answer, or writes the abort answer itself. Both write through buffers that
// are flushed right before a read would wait (flushReader) or before any other wait.

// item is one request, as the answer loop needs to know it.
type item struct {
	abort  bool
	noBody bool // HEAD: the answer has no body whatever its head says
	close  bool // close the connection after the answer
	raw    bool // the request loop splices from here on: so does the answer loop
}

// queueLen bounds the pipelined requests in flight on one connection.
const queueLen = 16

func (c *conn) serveHTTP1(cr, ur *bufio.Reader, cf, uf *flushReader, upFirst chan error) {
	uw := bufio.NewWriterSize(c.up, bufSize/2)
	cw := bufio.NewWriterSize(c.client, bufSize/2)
	cf.w = uw
	h := &h1{c: c, q: make(chan item, queueLen), raw: make(chan struct{}), done: make(chan struct{}), reqDone: make(chan struct{})}
	h.upFirst = func() {
		// The sniffing read on the app's side may still be under way (the app has not said
		// anything yet): wait for it before the first use of ur, and only then have ur flush.
		cw.Flush()
		<-upFirst
		uf.w = cw
	}
	go func() {
		defer close(h.done)
		h.answers(ur, cw)
	}()
	h.requests(cr, uw)
	close(h.reqDone)
	h.wake()
	<-h.done
}

type h1 struct {
	c       *conn
	q       chan item
	raw     chan struct{} // closed when the answer loop splices
	rawOnce sync.Once
	done    chan struct{} // closed when the answer loop ends
	reqDone chan struct{} // closed when the request loop ends
	upFirst func()        // called once, by the answer loop, before it first reads the app

	mu    sync.Mutex // guards idle and woken, and the app's read deadline
	idle  bool       // the answer loop waits on the app with nothing queued
	woken bool       // and its wait was cut short by a read deadline
}

func (h *h1) goRaw() { h.rawOnce.Do(func() { close(h.raw) }) }

// push queues it for the answer loop; false if that loop will take no more.
func (h *h1) push(it item, w *bufio.Writer) bool {
	select {
	case h.q <- it:
	default:
		w.Flush()
		select {
		case h.q <- it:
		case <-h.raw:
			return false
		case <-h.done:
			return false
		}
	}
	if it.abort || it.raw {
		h.wake() // the app will not answer this one
	}
	return true
}

func (h *h1) requests(r *bufio.Reader, w *bufio.Writer) {
	c, m := h.c, h.c.p.m
	for {
		if _, err := r.Peek(1); err != nil {
			w.Flush()
			if errors.Is(err, io.EOF) && c.busy.Load() > 0 {
				closeWrite(c.up) // the answers in flight still come back
				return
			}
			c.closeAll()
			return
		}
		if c.busy.Add(1) <= 0 {
			return // Shutdown closed the connection as idle
		}
		select {
		case <-h.raw:
			h.splice(r, w)
			return
		default:
		}
		rh, err := readHead(r, m.headers)
		if err != nil {
			h.push(item{raw: true}, w)
			h.splice(r, w)
			return
		}
		v := m.decide(string(rh.method), string(rh.target), func(i int) (string, bool) {
			return string(rh.vals[i]), rh.has[i]
		})
		if v.delay > 0 {
			w.Flush()
			if !sleep(c.p.ctx, v.delay) {
				return
			}
		}
		noBody := string(rh.method) == "HEAD"
		if v.abort {
			r.Discard(rh.n)
			// The body is read and dropped, so the connection stays in step; one the client
			// holds back for a 100 Continue is never sent: close after the answer instead.
			cl := rh.close || rh.expect && (rh.chunked || rh.length > 0)
			if !cl {
				if err := body(io.Discard, r, rh.chunked, rh.length); err != nil {
					cl = true
				}
			}
			if !h.push(item{abort: true, noBody: noBody, close: cl}, w) || cl {
				return
			}
			continue
		}
		b, _ := r.Peek(rh.n)
		w.Write(b)
		r.Discard(rh.n)
		// Queued before the body goes on: the answer (a 100 Continue, or an early one) may
		// come while the body still streams.
		if !h.push(item{noBody: noBody}, w) {
			h.splice(r, w)
			return
		}
		err = body(w, r, rh.chunked, rh.length)
		if err != nil || rh.upgrade {
			// A body the parser cannot follow: every byte read so far went on unchanged, so
			// splice the rest as it comes. After an Upgrade or CONNECT, what follows is the
			// new protocol once the app agrees, and the proxy does not wait to know: it
			// splices from here on either way (a refused upgrade's later requests go
			// unfaulted, but nothing stalls).
			h.push(item{raw: true}, w)
			h.splice(r, w)
			return
		}
	}
}

// splice forwards the rest of the client's bytes unparsed.
func (h *h1) splice(r *bufio.Reader, w *bufio.Writer) {
	h.c.kind.Store(kindRaw)
	if w.Flush() == nil {
		pipe(h.c.up, h.c.client, r)
	}
}

func (h *h1) answers(r *bufio.Reader, w *bufio.Writer) {
	c := h.c
	for {
		it, ok := h.next(r, w)
		if !ok {
			w.Flush()
			c.closeAll()
			return
		}
		if !it.abort && h.upFirst != nil {
			h.upFirst()
			h.upFirst = nil
		}
		if it.raw {
			h.spliceAnswers(r, w)
			return
		}
		var last bool
		if it.abort {
			closing := c.p.shutting.Load() || it.close
			w.Write(c.p.abortAnswer(it.noBody, closing))
			c.busy.Add(-1)
			last = closing
		} else {
			var err error
			last, err = h.answer(r, w, it)
			switch {
			case errors.Is(err, errSpliced):
				return
			case errors.Is(err, errNotHTTP):
				h.spliceAnswers(r, w)
				return
			case err != nil:
				last = true
			}
		}
		if last || c.p.shutting.Load() && c.busy.CompareAndSwap(0, -1) {
			w.Flush()
			c.closeAll()
			return
		}
	}
}

// next takes the next request off the queue, flushing what was written before it waits; false
// when the request loop has ended and left nothing.
//
// Once the app's side is its own, it waits on the app rather than on the queue: a request is
// queued before it reaches the app, so its answer finds it there, and the request loop need
// not wake this goroutine for every request (a wake-up of a goroutine, and often of a thread, is
// as dear as a system call at these speeds). The request loop wakes it only for what the app
// will not answer: an abort, a splice, the end (wake).
func (h *h1) next(r *bufio.Reader, w *bufio.Writer) (item, bool) {
	for {
		select {
		case it := <-h.q:
			return it, true
		default:
		}
		if h.upFirst == nil {
			h.mu.Lock()
			if len(h.q) > 0 {
				h.mu.Unlock()
				continue
			}
			select {
			case <-h.reqDone:
				h.mu.Unlock()
				return item{}, false
			default:
			}
			h.idle = true
			h.mu.Unlock()
			_, err := r.Peek(1) // flushes w first
			h.mu.Lock()
			h.idle = false
			woken := h.woken
			if woken {
				h.woken = false
				h.c.up.SetReadDeadline(time.Time{})
			}
			h.mu.Unlock()
			if err != nil {
				if woken && errors.Is(err, os.ErrDeadlineExceeded) {
					continue
				}
				return item{}, false // the app closed: nothing more will be answered
			}
			// The app said something: the answer to a request being queued.
		}
		w.Flush()
		select {
		case it := <-h.q:
			return it, true
		case <-h.reqDone:
			select {
			case it := <-h.q:
				return it, true
			default:
			}
		case <-h.c.p.ctx.Done():
		}
		return item{}, false
	}
}

// wake interrupts the answer loop's wait on the app (next), if it is waiting there, so that it
// looks at the queue.
func (h *h1) wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle && !h.woken {
		h.woken = true
		h.c.up.SetReadDeadline(aLongTimeAgo)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// answer forwards the answer to it: any 1xx first, then the final one. last: the connection
// ends after it.
func (h *h1) answer(r *bufio.Reader, w *bufio.Writer, it item) (last bool, err error) {
	c := h.c
	for {
		rh, err := readRespHead(r)
		if err != nil {
			return true, err
		}
		if rh.status == 101 {
			return true, errNotHTTP // a switch nobody asked for: splice
		}
		if rh.status < 200 {
			b, _ := r.Peek(rh.n) // 100 Continue, 103 Early Hints: out at the next read
			w.Write(b)
			r.Discard(rh.n)
			continue
		}
		closing := c.p.shutting.Load()
		b, _ := r.Peek(rh.n)
		if closing && !rh.close {
			writeClosing(w, b)
		} else {
			w.Write(b)
		}
		r.Discard(rh.n)
		switch {
		case it.noBody || rh.status == 204 || rh.status == 304:
		case rh.chunked:
			err = body(w, r, true, 0)
		case rh.length >= 0:
			err = body(w, r, false, rh.length)
		default:
			_, err = r.WriteTo(w) // delimited by the close
			return true, err
		}
		c.busy.Add(-1)
		return closing || rh.close, err
	}
}

// spliceAnswers forwards the rest of the app's bytes unparsed, and has the request loop do the
// same with the client's.
func (h *h1) spliceAnswers(r *bufio.Reader, w *bufio.Writer) error {
	h.c.kind.Store(kindRaw)
	h.goRaw()
	if err := w.Flush(); err != nil {
		return err
	}
	pipe(h.c.client, h.c.up, r)
	return errSpliced
}

var errSpliced = errors.New("spliced")

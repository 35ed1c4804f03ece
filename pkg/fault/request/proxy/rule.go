package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Rule is which requests a run faults, and how.
type Rule struct {
	Methods []string // upper case; empty: any method
	Path    string   // prefix; "" any path (used when PathRE is nil)
	// PathRE, instead of Path, is matched (MatchString: anchor it for a whole-path match)
	// against the path as the client sent it, without the query.
	PathRE *regexp.Regexp
	// Headers maps a header name to a value pattern; all must match, and a header the request
	// does not carry never matches. Repeated header lines are joined with ", " first. For
	// HTTP/2, "Host" is the request's :authority.
	Headers map[string]*regexp.Regexp
	Percent float64 // of the matching requests, 0..100
	Abort   int     // HTTP status for an aborted HTTP request; 0: no abort
	// GRPC is the gRPC status code of an aborted gRPC request (content-type application/grpc*,
	// over HTTP/2); 0: Abort mapped as Istio does, or UNAVAILABLE (14) without Abort.
	GRPC   int
	Delay  time.Duration // added before the request goes on (or before the abort answer)
	Jitter time.Duration // uniform ± around Delay, never below 0
	Seed   uint64        // 0: random
}

// Observe outcomes, as passed to Options.Observe.
const (
	Seen    = "seen"
	Aborted = "aborted"
	Delayed = "delayed"
)

// abortBody is the body of an aborted request's answer: Envoy's, so that a user coming from
// Istio's fault injection recognises it.
const abortBody = "fault filter abort"

func (r Rule) validate() error {
	var errs []error
	if r.Percent < 0 || r.Percent > 100 || r.Percent != r.Percent {
		errs = append(errs, fmt.Errorf("percent %v: want 0..100", r.Percent))
	}
	if r.Abort != 0 && (r.Abort < 200 || r.Abort > 599) {
		errs = append(errs, fmt.Errorf("abort %d: want an HTTP status 200..599", r.Abort))
	}
	if r.GRPC < 0 || r.GRPC > 16 {
		errs = append(errs, fmt.Errorf("grpc status %d: want 0..16", r.GRPC))
	}
	if r.Delay < 0 || r.Jitter < 0 {
		errs = append(errs, fmt.Errorf("delay %v, jitter %v: want ≥ 0", r.Delay, r.Jitter))
	}
	for _, m := range r.Methods {
		if m == "" || !isToken(m) {
			errs = append(errs, fmt.Errorf("method %q: not an HTTP method token", m))
		}
	}
	for name, re := range r.Headers {
		if name == "" || !isToken(name) {
			errs = append(errs, fmt.Errorf("header %q: not a header name", name))
		}
		if re == nil {
			errs = append(errs, fmt.Errorf("header %q: no pattern", name))
		}
	}
	return errors.Join(errs...)
}

// header is one header condition of a rule.
type header struct {
	name string // canonical
	re   *regexp.Regexp
}

// matcher decides, per request, whether the rule matches and whether the roll faults it. It
// is shared by every connection of a proxy.
type matcher struct {
	rule    Rule
	methods []string
	headers []header
	observe func(string)

	mu  sync.Mutex // guards rng: one seeded sequence for the whole proxy
	rng *rand.Rand
}

func newMatcher(r Rule, observe func(string)) *matcher {
	m := &matcher{rule: r, observe: observe}
	for _, s := range r.Methods {
		m.methods = append(m.methods, strings.ToUpper(s))
	}
	for name, re := range r.Headers {
		m.headers = append(m.headers, header{textproto.CanonicalMIMEHeaderKey(name), re})
	}
	seed := r.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	m.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if m.observe == nil {
		m.observe = func(string) {}
	}
	return m
}

// verdict is what happens to one request.
type verdict struct {
	abort bool
	delay time.Duration
}

// decide matches a request and rolls for it; value returns the joined values of the rule's
// i-th header and whether the request carries it. It reports the outcome to Observe.
func (m *matcher) decide(method, target string, value func(i int) (string, bool)) verdict {
	m.observe(Seen)
	if !m.match(method, target, value) {
		return verdict{}
	}
	r := &m.rule
	if r.Percent <= 0 {
		return verdict{}
	}
	m.mu.Lock()
	hit := r.Percent >= 100 || m.rng.Float64()*100 < r.Percent
	var j float64
	if hit && r.Jitter > 0 {
		j = m.rng.Float64()*2 - 1
	}
	m.mu.Unlock()
	if !hit {
		return verdict{}
	}
	v := verdict{abort: r.Abort != 0 || r.GRPC != 0, delay: max(0, r.Delay+time.Duration(j*float64(r.Jitter)))}
	if v.delay > 0 {
		m.observe(Delayed)
	}
	if v.abort {
		m.observe(Aborted)
	}
	return v
}

func (m *matcher) match(method, target string, value func(i int) (string, bool)) bool {
	if len(m.methods) > 0 {
		ok := false
		for _, s := range m.methods {
			if s == method {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	path := pathOf(target)
	switch {
	case m.rule.PathRE != nil:
		if !m.rule.PathRE.MatchString(path) {
			return false
		}
	case !strings.HasPrefix(path, m.rule.Path):
		return false
	}
	for i, h := range m.headers {
		v, ok := value(i)
		if !ok || !h.re.MatchString(v) {
			return false
		}
	}
	return true
}

// pathOf is the path of a request target: the origin form's part before the query, the
// absolute form's path ("/" when it has none), or the target itself ("*", authority form).
func pathOf(target string) string {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if target == "" || target[0] == '/' || target == "*" {
		return target
	}
	if i := strings.Index(target, "://"); i > 0 {
		rest := target[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return rest[j:]
		}
		return "/"
	}
	return target
}

// httpStatus is the status of an aborted plain HTTP request.
func (r *Rule) httpStatus() int {
	if r.Abort != 0 {
		return r.Abort
	}
	return grpcToHTTP(r.GRPC)
}

// grpcStatus is the status of an aborted gRPC request: GRPC, or Abort mapped as Envoy maps an
// HTTP status to a gRPC one (the gRPC project's "HTTP to gRPC status code mapping").
func (r *Rule) grpcStatus() int {
	if r.GRPC != 0 {
		return r.GRPC
	}
	switch r.Abort {
	case 0:
		return 14 // UNAVAILABLE
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// grpcToHTTP maps a gRPC status to the HTTP status a plain HTTP request is aborted with when
// the rule gives only a gRPC status (as grpc-gateway does).
func grpcToHTTP(code int) int {
	switch code {
	case 1:
		return 499
	case 3, 9, 11:
		return 400
	case 4:
		return 504
	case 5:
		return 404
	case 6, 10:
		return 409
	case 7:
		return 403
	case 8:
		return 429
	case 12:
		return 501
	case 14:
		return 503
	case 16:
		return 401
	}
	return 500
}

// isToken reports whether s is an RFC 9110 token (a method, a header name).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return s != ""
}

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-32] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

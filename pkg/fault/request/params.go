package request

import (
	"errors"
	"fmt"
	"math"
	"net/textproto"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// params is the fault's YAML mapping as fault.Decode sees it. Pointers tell "not set" from zero.
type params struct {
	Port       *int           `param:"port"`
	Methods    []string       `param:"methods"`
	Path       *string        `param:"path"`
	PathRegex  *string        `param:"path_regex"`
	Headers    map[string]any `param:"headers"`
	Percent    *fault.Percent `param:"percent"`
	Abort      *int           `param:"abort"`
	GRPCStatus any            `param:"grpc_status"`
	Delay      *time.Duration `param:"delay"`
	Jitter     *time.Duration `param:"jitter"`
	Netns      *string        `param:"netns"`
	Drain      *time.Duration `param:"drain"`
}

// Limits. A delay above an hour is a typo; a drain above five minutes outlives any
// reasonable shutdown grace period.
const (
	maxDelay     = time.Hour
	defaultDrain = 5 * time.Second
	maxDrain     = 5 * time.Minute
	maxList      = 32
	maxHeaders   = 8 // the proxy matches at most 8 header conditions per request
	maxRegexp    = 1024
)

// grpcCodes are the gRPC status names (google.golang.org/grpc/codes), by number.
var grpcCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// rule is which requests a run faults, and how: the proxy's Rule, validated.
type rule struct {
	Methods []string
	Path    string
	PathRE  *regexp.Regexp
	Headers map[string]*regexp.Regexp
	Percent float64
	Abort   int
	GRPC    int
	Delay   time.Duration
	Jitter  time.Duration
}

// config is a validated fault configuration.
type config struct {
	rule  rule
	port  uint16
	netns string // "": the agent's own network namespace
	drain time.Duration
}

// parse validates p. Every problem is reported, keyed by parameter name.
func parse(p fault.Params, env fault.Env) (config, error) {
	var in params
	es := fault.Errors(fault.FieldErrors(fault.Decode(p, &in)))
	c := config{drain: defaultDrain, rule: rule{Percent: 100}}
	r := &c.rule

	switch {
	case in.Port == nil:
		if !es.Has("port") {
			es.Add("port", "missing: the app's TCP port whose inbound requests are faulted")
		}
	case *in.Port < 1 || *in.Port > math.MaxUint16:
		es.Add("port", fmt.Sprintf("%d is not a port (1..65535)", *in.Port))
	case *in.Port == env.ListenPort:
		es.Add("port", fmt.Sprintf("%d is the agent's own listen port: its API and metrics are never faulted", *in.Port))
	default:
		c.port = uint16(*in.Port)
	}

	if len(in.Methods) > maxList {
		es.Add("methods", fmt.Sprintf("%d entries: at most %d", len(in.Methods), maxList))
	} else {
		for i, m := range in.Methods {
			key := fmt.Sprintf("methods[%d]", i)
			if es.Has(key) {
				continue // not a string: told by Decode
			}
			u := strings.ToUpper(strings.TrimSpace(m))
			if !isToken(u) {
				es.Add(key, fmt.Sprintf("%s is not an HTTP method (examples: GET, POST)", fault.Quote(m)))
			} else if !slices.Contains(r.Methods, u) {
				r.Methods = append(r.Methods, u)
			}
		}
	}

	switch {
	case in.Path != nil && in.PathRegex != nil:
		es.Add("path_regex", "not with path: path is a prefix, path_regex a regular expression; give one")
	case in.Path != nil:
		if !strings.HasPrefix(*in.Path, "/") {
			es.Add("path", fmt.Sprintf("%s is not a path prefix: it starts with /, as in /api/orders", fault.Quote(*in.Path)))
		} else {
			r.Path = *in.Path
		}
	case in.PathRegex != nil:
		if re, msg := compile(*in.PathRegex); msg != "" {
			es.Add("path_regex", msg)
		} else {
			r.PathRE = re
		}
	}

	r.Headers = headers(in.Headers, &es)

	if in.Percent != nil {
		r.Percent = float64(*in.Percent) // Decode has checked 0..100
	}
	if in.Abort != nil {
		if a := *in.Abort; a < 200 || a > 599 {
			es.Add("abort", fmt.Sprintf("%d is not an HTTP status to answer with (200..599)", a))
		} else {
			r.Abort = a
		}
	}
	if in.GRPCStatus != nil {
		if g, msg := grpcStatus(in.GRPCStatus); msg != "" {
			es.Add("grpc_status", msg)
		} else {
			r.GRPC = g
		}
	}
	dur := func(key string, d *time.Duration, limit time.Duration, out *time.Duration) {
		switch {
		case d == nil:
		case *d < 0:
			es.Add(key, fmt.Sprintf("%s is negative", *d))
		case *d > limit:
			es.Add(key, fmt.Sprintf("%s is above the limit of %s", *d, limit))
		default:
			*out = *d
		}
	}
	dur("delay", in.Delay, maxDelay, &r.Delay)
	dur("jitter", in.Jitter, maxDelay, &r.Jitter)
	dur("drain", in.Drain, maxDrain, &c.drain)
	if in.Jitter != nil && in.Delay == nil && !es.Has("jitter") {
		es.Add("jitter", "needs a delay")
	}
	if in.Abort == nil && in.GRPCStatus == nil && in.Delay == nil && len(es) == 0 {
		es.Add("", "an http fault needs abort, grpc_status or delay (or abort and delay)")
	}

	if in.Netns != nil {
		if ns := strings.TrimSpace(*in.Netns); ns != "" {
			if !filepath.IsAbs(ns) {
				es.Add("netns", fmt.Sprintf("%s is not an absolute path (examples: /proc/1234/ns/net, /run/netns/blue)", fault.Quote(ns)))
			} else {
				c.netns = filepath.Clean(ns)
			}
		}
	}
	if err := es.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}

// headers reads the headers mapping: name → value, where a value is a string (an exact
// match) or a mapping with exactly one of exact, prefix or regex, as Istio's
// HTTPMatchRequest headers are.
func headers(in map[string]any, es *fault.Errors) map[string]*regexp.Regexp {
	if len(in) == 0 {
		return nil
	}
	if len(in) > maxHeaders {
		es.Add("headers", fmt.Sprintf("%d entries: at most %d", len(in), maxHeaders))
		return nil
	}
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]*regexp.Regexp{}
	first := map[string]string{}
	for _, name := range names {
		key := "headers." + name
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if !isToken(name) {
			es.Add(key, fmt.Sprintf("%s is not a header name", fault.Quote(name)))
			continue
		}
		if prev, dup := first[canon]; dup {
			es.Add(key, fmt.Sprintf("the same header as %s (names are case-insensitive)", fault.Quote(prev)))
			continue
		}
		first[canon] = name
		var kind, val string
		switch v := in[name].(type) {
		case string:
			kind, val = "exact", v
		case map[string]any:
			if len(v) != 1 {
				es.Add(key, "expected exactly one of exact, prefix, regex")
				continue
			}
			for k, x := range v {
				s, ok := x.(string)
				if !ok {
					es.Add(key+"."+k, fmt.Sprintf("expected a string, got %s", fault.Describe(x)))
					break
				}
				kind, val = k, s
			}
			if kind == "" {
				continue
			}
		default:
			es.Add(key, fmt.Sprintf("expected a string (an exact value) or {exact|prefix|regex: ...}, got %s", fault.Describe(in[name])))
			continue
		}
		switch kind {
		case "exact":
			out[canon] = regexp.MustCompile("^" + regexp.QuoteMeta(val) + "$")
		case "prefix":
			out[canon] = regexp.MustCompile("^" + regexp.QuoteMeta(val))
		case "regex":
			re, msg := compile(val)
			if msg != "" {
				es.Add(key+".regex", msg)
				continue
			}
			out[canon] = re
		default:
			es.Add(key+"."+kind, fmt.Sprintf("unknown match %s: expected exact, prefix or regex", fault.Quote(kind)))
		}
	}
	return out
}

// compile compiles a regular expression that must match the whole value, as Envoy's (and so
// Istio's) regex matches do.
func compile(s string) (*regexp.Regexp, string) {
	if len(s) > maxRegexp {
		return nil, fmt.Sprintf("%d bytes: at most %d", len(s), maxRegexp)
	}
	if _, err := regexp.Compile(s); err != nil {
		msg := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			msg = se.Code.String()
		}
		return nil, fmt.Sprintf("%s is not a regular expression (RE2 syntax): %s", fault.Quote(s), msg)
	}
	return regexp.MustCompile("^(?:" + s + ")$"), ""
}

// grpcStatus reads a gRPC status code: a number 1..16 or its name (UNAVAILABLE, as Istio
// writes it). OK (0) is not an abort.
func grpcStatus(v any) (int, string) {
	if s, ok := v.(string); ok {
		u := strings.ToUpper(strings.TrimSpace(s))
		if i := slices.Index(grpcCodes, u); i > 0 {
			return i, ""
		}
		if n, err := strconv.Atoi(u); err == nil {
			v = n
		} else {
			return 0, fmt.Sprintf("%s is not a gRPC status: a code 1..16 or a name (%s)", fault.Quote(s), strings.Join(grpcCodes[1:], ", "))
		}
	}
	n, ok := fault.WholeNumber(v)
	if !ok {
		return 0, fmt.Sprintf("expected a gRPC status code 1..16 or a name like UNAVAILABLE, got %s", fault.Describe(v))
	}
	if n < 1 || n > 16 {
		return 0, fmt.Sprintf("%d is not a gRPC status to abort with (1..16; 0 is OK)", n)
	}
	return int(n), ""
}

// isToken reports whether s is an HTTP token (RFC 9110): method and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

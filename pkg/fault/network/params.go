package network

import (
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	tc "github.com/florianl/go-tc"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// params is the fault's YAML mapping as fault.Decode sees it. Pointers tell "not set" from zero.
type params struct {
	Delay           *time.Duration `param:"delay"`
	Jitter          *time.Duration `param:"jitter"`
	Correlation     *fault.Percent `param:"correlation"`
	Distribution    *string        `param:"distribution"`
	Loss            *fault.Percent `param:"loss"`
	LossCorrelation *fault.Percent `param:"loss_correlation"`
	Duplicate       *fault.Percent `param:"duplicate"`
	Corrupt         *fault.Percent `param:"corrupt"`
	Reorder         *fault.Percent `param:"reorder"`
	Gap             *int           `param:"gap"`
	Rate            *string        `param:"rate"`
	Limit           *int           `param:"limit"`
	Bandwidth       *string        `param:"bandwidth"`
	BandwidthBurst  *fault.Size    `param:"bandwidth_burst"`
	BandwidthLimit  *fault.Size    `param:"bandwidth_limit"`
	Interfaces      []string       `param:"interfaces"`
	Netns           *string        `param:"netns"`
	Ports           []int          `param:"ports"`
	ExcludePorts    *[]int         `param:"exclude_ports"`
	CIDRs           []string       `param:"cidrs"`
}

// Limits. A delay above an hour is a typo ("200s" for "200ms" is not, and passes); the list
// limits keep the number of u32 filters per interface small (each is evaluated per packet).
const (
	defaultLimit   = 1000
	maxLimit       = 1 << 24
	maxDelay       = time.Hour
	maxGap         = 1 << 20
	maxListLen     = 32
	maxFilterPairs = 256 // ports × cidrs
	ifNameMax      = 15  // IFNAMSIZ - 1
)

// netemConfig is what goes into the netem qdisc, validated.
type netemConfig struct {
	Delay        time.Duration
	Jitter       time.Duration
	Correlation  fault.Percent // of the delay
	Distribution string        // "" (uniform), normal, pareto, paretonormal
	Loss         fault.Percent
	LossCorr     fault.Percent
	Duplicate    fault.Percent
	Corrupt      fault.Percent
	Reorder      fault.Percent
	Gap          uint32
	Rate         uint64 // bytes per second; 0 = unlimited
	RateText     string // as the user wrote it, for Describe
	Limit        uint32 // packets netem may hold
}

// scope says which traffic is faulted.
type scope struct {
	Ports   []uint16       // source or destination port (either matches)
	CIDRs   []netip.Prefix // destination address
	Exclude []uint16       // never faulted, source or destination port
}

// scoped reports whether only some traffic is faulted (otherwise all of it but Exclude).
func (s scope) scoped() bool { return len(s.Ports) > 0 || len(s.CIDRs) > 0 }

// steered reports whether filters must sort packets between the bands.
func (s scope) steered() bool { return s.scoped() || len(s.Exclude) > 0 }

// config is a validated fault configuration.
type config struct {
	netem      netemConfig
	tbf        tbfConfig // Rate > 0: a bandwidth fault, tbf instead of netem
	scope      scope
	interfaces []string // empty: every interface with a default route, except lo
	netns      string   // "": the agent's own network namespace
}

// rootKind is the kind of chaoscron's root qdisc: tbf alone for a bandwidth fault with no
// packets to sort (no ports, cidrs or exclude_ports), prio with the fault on a band otherwise.
// Netem keeps its prio root in every case, as before bandwidth existed.
func (c config) rootKind() string {
	if c.tbf.Rate > 0 && !c.scope.steered() {
		return "tbf"
	}
	return "prio"
}

// leaf returns the qdisc that does the fault: netem, or tbf with its bucket in ticks of the
// scheduler clock read under proc.
func (c config) leaf(proc string) (tc.Attribute, error) {
	if c.tbf.Rate > 0 {
		return c.tbf.attribute(proc)
	}
	return tc.Attribute{Kind: "netem", Netem: c.netem.options()}, nil
}

// qdisc says what the qdisc that does the fault does ("tbf rate 1Mbit burst 16KiB ...").
func (c config) qdisc() string {
	if c.tbf.Rate > 0 {
		return "tbf " + c.tbf.String()
	}
	return "netem " + c.netem.String()
}

// parse validates p. Every problem is reported, keyed by parameter name.
func parse(p fault.Params, env fault.Env) (config, error) {
	var in params
	es := fault.Errors(fault.FieldErrors(fault.Decode(p, &in)))
	c := config{netem: netemConfig{Limit: defaultLimit}}
	n := &c.netem

	dur := func(key string, d *time.Duration, out *time.Duration) {
		switch {
		case d == nil:
		case *d < 0:
			es.Add(key, fmt.Sprintf("%s is negative", *d))
		case *d > maxDelay:
			es.Add(key, fmt.Sprintf("%s is above the limit of %s", *d, maxDelay))
		default:
			*out = *d
		}
	}
	pct := func(p *fault.Percent, out *fault.Percent) {
		if p != nil { // Decode has checked 0..100 already
			*out = *p
		}
	}
	dur("delay", in.Delay, &n.Delay)
	dur("jitter", in.Jitter, &n.Jitter)
	pct(in.Correlation, &n.Correlation)
	pct(in.Loss, &n.Loss)
	pct(in.LossCorrelation, &n.LossCorr)
	pct(in.Duplicate, &n.Duplicate)
	pct(in.Corrupt, &n.Corrupt)
	pct(in.Reorder, &n.Reorder)

	// The same dependencies iproute2's tc enforces, so a config means what it would to tc.
	if n.Jitter > 0 && n.Delay == 0 {
		es.Add("jitter", "needs a delay")
	}
	if n.Correlation > 0 && n.Jitter == 0 {
		es.Add("correlation", "is the correlation of the jitter: needs a jitter")
	}
	if in.Distribution != nil {
		d := strings.ToLower(strings.TrimSpace(*in.Distribution))
		switch {
		case d == "uniform":
		case !slices.Contains(distributions, d):
			es.Add("distribution", fmt.Sprintf("%q is not one of uniform, %s", *in.Distribution, strings.Join(distributions, ", ")))
		case n.Jitter == 0:
			es.Add("distribution", "shapes the jitter: needs a delay and a jitter")
		default:
			n.Distribution = d
		}
	}
	if n.LossCorr > 0 && n.Loss == 0 {
		es.Add("loss_correlation", "needs a loss")
	}
	if n.Reorder > 0 && n.Delay == 0 {
		es.Add("reorder", "needs a delay (reordered packets are the ones sent without it)")
	}
	if in.Gap != nil {
		switch g := *in.Gap; {
		case g < 1 || g > maxGap:
			es.Add("gap", fmt.Sprintf("%d is not between 1 and %d", g, maxGap))
		case n.Reorder == 0:
			es.Add("gap", "needs a reorder percentage")
		default:
			n.Gap = uint32(g)
		}
	} else if n.Reorder > 0 {
		n.Gap = 1 // tc's default: every packet is a candidate for reordering
	}
	if in.Rate != nil {
		r, err := ParseRate(*in.Rate)
		if err != nil {
			es.Add("rate", err.Error())
		} else {
			n.Rate, n.RateText = r, strings.TrimSpace(*in.Rate)
		}
	}
	if in.Limit != nil {
		// A limit of 0 makes netem drop every packet: never send it.
		if l := *in.Limit; l < 1 || l > maxLimit {
			es.Add("limit", fmt.Sprintf("%d is not between 1 and %d", l, maxLimit))
		} else {
			n.Limit = uint32(l)
		}
	}
	c.tbf = parseTbf(in, &es)
	if in.Delay == nil && in.Loss == nil && in.Duplicate == nil && in.Corrupt == nil &&
		in.Reorder == nil && in.Rate == nil && in.Bandwidth == nil && len(es) == 0 {
		es.Add("", "a network fault needs at least one of delay, loss, duplicate, corrupt, reorder, rate, bandwidth")
	}

	seen := map[string]bool{}
	for i, name := range in.Interfaces {
		key := fmt.Sprintf("interfaces[%d]", i)
		if es.Has(key) {
			continue // not a string: told by Decode
		}
		if err := checkIfName(name); err != nil {
			es.Add(key, err.Error())
		} else if seen[name] {
			es.Add(key, fmt.Sprintf("%q is listed twice", name))
		} else {
			seen[name] = true
			c.interfaces = append(c.interfaces, name)
		}
	}
	if in.Netns != nil {
		if ns := strings.TrimSpace(*in.Netns); ns != "" {
			if !filepath.IsAbs(ns) {
				es.Add("netns", fmt.Sprintf("%q is not an absolute path (examples: /proc/1234/ns/net, /run/netns/blue)", ns))
			} else {
				c.netns = filepath.Clean(ns)
			}
		}
	}

	c.scope.Ports = ports("ports", in.Ports, &es)
	if in.ExcludePorts != nil {
		c.scope.Exclude = ports("exclude_ports", *in.ExcludePorts, &es)
	} else if env.ListenPort > 0 && env.ListenPort <= math.MaxUint16 {
		// The agent's own metrics keep flowing unless the user says otherwise.
		c.scope.Exclude = []uint16{uint16(env.ListenPort)}
	}
	for _, p := range c.scope.Ports {
		if slices.Contains(c.scope.Exclude, p) {
			if in.ExcludePorts == nil {
				es.Add("ports", fmt.Sprintf("%d is the agent's own port, which is never faulted", p))
			} else {
				es.Add("ports", fmt.Sprintf("%d is also in exclude_ports", p))
			}
		}
	}
	if len(in.CIDRs) > maxListLen {
		es.Add("cidrs", fmt.Sprintf("%d entries: at most %d", len(in.CIDRs), maxListLen))
	} else {
		for i, s := range in.CIDRs {
			key := fmt.Sprintf("cidrs[%d]", i)
			if es.Has(key) {
				continue // not a string: told by Decode
			}
			pfx, err := parseCIDR(s)
			if err != nil {
				es.Add(key, err.Error())
			} else if !slices.Contains(c.scope.CIDRs, pfx) {
				c.scope.CIDRs = append(c.scope.CIDRs, pfx)
			}
		}
	}
	if pairs := max(1, len(c.scope.Ports)) * max(1, len(c.scope.CIDRs)); pairs > maxFilterPairs {
		es.Add("ports", fmt.Sprintf("%d ports × %d cidrs is above the limit of %d combinations",
			len(c.scope.Ports), len(c.scope.CIDRs), maxFilterPairs))
	}
	if err := es.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}

func ports(key string, in []int, es *fault.Errors) []uint16 {
	if len(in) > maxListLen {
		es.Add(key, fmt.Sprintf("%d entries: at most %d", len(in), maxListLen))
		return nil
	}
	var out []uint16
	for i, p := range in {
		k := fmt.Sprintf("%s[%d]", key, i)
		if es.Has(k) {
			continue // not a number: told by Decode
		}
		if p < 1 || p > math.MaxUint16 {
			es.Add(k, fmt.Sprintf("%d is not a port (1..65535)", p))
			continue
		}
		if !slices.Contains(out, uint16(p)) {
			out = append(out, uint16(p))
		}
	}
	return out
}

func checkIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty")
	case len(name) > ifNameMax:
		return fmt.Errorf("%q is longer than %d bytes, the kernel's limit for interface names", name, ifNameMax)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("%q is not a valid interface name", name)
	}
	return nil
}

// parseCIDR accepts "10.0.0.0/8", "fd00::/8" and a bare address (a /32 or /128). Host bits
// are cleared: "10.1.2.3/8" means 10.0.0.0/8, as u32 would match it anyway.
func parseCIDR(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	if !strings.Contains(t, "/") {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR (examples: 10.0.0.0/8, 192.0.2.7, fd00::/8)", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(t)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (examples: 10.0.0.0/8, fd00::/8)", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix must be /96 or longer", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// rateUnits are tc's rate units (tc-rate(8)): bits or bytes per second, SI (1000) or IEC
// (1024) multiples. Matching is case-insensitive, longest suffix first.
var rateUnits = []struct {
	suffix string
	bits   float64 // bits per second per unit
}{
	{"tibit", 1 << 40}, {"gibit", 1 << 30}, {"mibit", 1 << 20}, {"kibit", 1 << 10},
	{"tibps", 8 << 40}, {"gibps", 8 << 30}, {"mibps", 8 << 20}, {"kibps", 8 << 10},
	{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3},
	{"tbps", 8e12}, {"gbps", 8e9}, {"mbps", 8e6}, {"kbps", 8e3},
	{"bit", 1}, {"bps", 8},
}

// maxRate is a sanity bound (about 8 Pbit/s), far above any NIC, well inside uint64.
const maxRate = 1 << 50

// ParseRate parses a rate as tc writes it ("10mbit", "1.5gbit", "100kbps", "512kibit") and
// returns bytes per second. A unit is required: tc reads a bare number as bits per second,
// which few people expect.
func ParseRate(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(num, "xXpP_") {
			break
		}
		bytes := math.Round(f * u.bits / 8)
		switch {
		case f <= 0:
			return 0, fmt.Errorf("%q must be above zero", s)
		case bytes < 1:
			return 0, fmt.Errorf("%q is below 8bit (one byte per second)", s)
		case bytes > maxRate:
			return 0, fmt.Errorf("%q is too large", s)
		}
		return uint64(bytes), nil
	}
	return 0, fmt.Errorf("%q is not a rate (examples: 10mbit, 1.5gbit, 512kbit, 100kbps)", s)
}

// formatRate writes bytes per second the way tc prints rates.
func formatRate(bytesPerSec uint64) string {
	bits := float64(bytesPerSec) * 8
	for _, u := range []struct {
		name string
		mult float64
	}{{"Tbit", 1e12}, {"Gbit", 1e9}, {"Mbit", 1e6}, {"Kbit", 1e3}} {
		if bits >= u.mult {
			return strconv.FormatFloat(bits/u.mult, 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatFloat(bits, 'f', -1, 64) + "bit"
}

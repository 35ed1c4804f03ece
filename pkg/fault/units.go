package fault

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes, written in YAML as a plain integer or with a unit:
// "512KiB", "256MiB", "1.5GiB", "10GB" (IEC units are powers of 1024, SI units powers of 1000).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"kB", 1e3}, {"K", 1e3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseSize parses a byte size such as "256MiB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a size (examples: 4096, 512KiB, 256MiB, 1.5GiB)", Quote(s))
	}
	if f < 0 {
		return 0, fmt.Errorf("%s is negative", Quote(s))
	}
	b := f * mult
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%s is too large", Quote(s))
	}
	return Size(math.Round(b)), nil
}

// String formats the size for people: the largest IEC unit, at most one decimal
// ("23.5GiB", "256MiB"); bytes below 1KiB exactly.
func (s Size) String() string {
	f := float64(s)
	for _, u := range []struct {
		name string
		mult float64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if math.Abs(f) >= u.mult {
			return strings.TrimSuffix(strconv.FormatFloat(f/u.mult, 'f', 1, 64), ".0") + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Percent is a share in percent, 0..100, written as "1.5%" or as a bare number of percent.
type Percent float64

// ParsePercent parses "30%", "0.5 %" or "30".
func ParsePercent(s string) (Percent, error) {
	t := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a percentage (examples: 30%%, 1.5%%)", Quote(s))
	}
	return Percent(f).check(s)
}

func (p Percent) check(orig string) (Percent, error) {
	if p < 0 {
		return 0, fmt.Errorf("%s is below 0%%", Quote(orig))
	}
	if p > 100 {
		return 0, fmt.Errorf("%s is above 100%%", Quote(orig))
	}
	return p, nil
}

// Fraction returns p as a fraction of one.
func (p Percent) Fraction() float64 { return float64(p) / 100 }

func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%" }

// ParseDuration is time.ParseDuration with an error that says what was expected.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration (examples: 200ms, 45s, 5m)", Quote(s))
	}
	return d, nil
}

package fault

import (
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"4096", 4096, false},
		{"512KiB", 512 << 10, false},
		{"256MiB", 256 << 20, false},
		{"1.5GiB", 3 << 29, false},
		{"10GB", 10e9, false},
		{"64M", 64e6, false},
		{" 2 Gi ", 2 << 30, false},
		{"0", 0, false},
		{"lots", 0, true},
		{"-1MiB", 0, true},
		{"", 0, true},
		{"NaN", 0, true},
		{"1e300GiB", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("ParseSize(%q) error = %v, want error %v", tc.in, err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	for in, want := range map[Size]string{256 << 20: "256MiB", 1536 << 20: "1.5GiB", 100: "100B"} {
		if got := in.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(in), got, want)
		}
	}
}

func TestParsePercent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Percent
		msg  string
	}{
		{"30%", 30, ""},
		{"1.5 %", 1.5, ""},
		{"100", 100, ""},
		{"0%", 0, ""},
		{"150%", 0, `"150%" is above 100%`},
		{"-1%", 0, `"-1%" is below 0%`},
		{"abc", 0, `"abc" is not a percentage (examples: 30%, 1.5%)`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePercent(tc.in)
			if tc.msg != "" {
				if err == nil || err.Error() != tc.msg {
					t.Fatalf("ParsePercent(%q) error = %v, want %q", tc.in, err, tc.msg)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePercent(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

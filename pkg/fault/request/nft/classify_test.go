package nft

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestClassify: the errors a kernel without nf_tables (or without nfnetlink) gives are told
// as such; others pass unchanged.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("dial: %w", syscall.EPROTONOSUPPORT), true}, // no nfnetlink
		{fmt.Errorf("batch: %w", syscall.EOPNOTSUPP), true},     // no nf_tables subsystem
		{syscall.EPERM, false},
		{syscall.ENOENT, false},
	} {
		if got := errors.Is(classify(tc.err), ErrNoNFTables); got != tc.want {
			t.Errorf("classify(%v) is ErrNoNFTables: %v, want %v", tc.err, got, tc.want)
		}
		if !errors.Is(classify(tc.err), tc.err) {
			t.Errorf("classify(%v) lost the cause", tc.err)
		}
	}
}

package memory

import (
	"context"
	"strconv"
	"testing"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

// BenchmarkResident reports how much of the requested size the fault makes resident: this
// process's VmRSS after Inject returns, less before, as a share of 512 MiB.
//
//	go test -run '^$' -bench Resident -benchtime 5x ./pkg/fault/memory
func BenchmarkResident(b *testing.B) {
	const size = 512 * mib
	f := newFault(b, fault.Params{"size": "512MiB"}, fault.Env{})
	var sum float64
	for i := range b.N {
		plan := mustPlan(b, f, "bench-"+strconv.Itoa(i))
		before := vmRSS(b)
		undo, err := f.Inject(context.Background(), plan)
		if err != nil {
			b.Fatal(err)
		}
		got := vmRSS(b) - before
		if err := f.Revert(context.Background(), undo); err != nil {
			b.Fatal(err)
		}
		sum += 100 * float64(got) / size
	}
	b.ReportMetric(sum/float64(b.N), "resident%")
}

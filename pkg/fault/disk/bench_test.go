package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
)

const benchSize = 256 << 20

// BenchmarkFill measures how fast a 256MiB fill is in place (Inject, including fsync), by
// each method and by the fallocate(1) binary, on the filesystem of the temporary directory:
//
//	go test -run '^$' -bench Fill ./pkg/fault/disk
func BenchmarkFill(b *testing.B) {
	for _, method := range []string{"fallocate", "write"} {
		b.Run(method, func(b *testing.B) {
			dir := b.TempDir()
			f := newFault(b, fault.Params{"path": dir, "size": benchSize, "reserve": "1GiB", "method": method})
			b.SetBytes(benchSize)
			var elapsed time.Duration
			for i := 0; b.Loop(); i++ {
				plan, err := f.Plan(b.Context(), "bench-"+strconv.Itoa(i))
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				u, err := f.Inject(b.Context(), plan)
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Revert(b.Context(), u); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*benchSize/(1<<30)/elapsed.Seconds(), "GiB/s")
		})
	}
	b.Run("fallocate(1)", func(b *testing.B) {
		bin, err := exec.LookPath("fallocate")
		if err != nil {
			b.Skip("fallocate(1) not on PATH")
		}
		file := filepath.Join(b.TempDir(), "fill")
		b.SetBytes(benchSize)
		var elapsed time.Duration
		for b.Loop() {
			start := time.Now()
			// fallocate(1) does not fsync; the difference is small next to fork and exec.
			if out, err := exec.Command(bin, "-l", strconv.Itoa(benchSize), file).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			elapsed += time.Since(start)
			if err := os.Remove(file); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*benchSize/(1<<30)/elapsed.Seconds(), "GiB/s")
	})
}

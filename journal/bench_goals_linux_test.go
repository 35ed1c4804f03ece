package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIntentVsFloor takes turns, within each iteration, between Begin (the intent
// commit, fsync on) and the floor it is compared with: a plain write of the same encoded
// bytes plus fdatasync, to a file in the same directory. Taking turns puts the machine's
// load on both alike, so ratio (Begin's median over the floor's) is a fair one.
//
//	go test -run '^$' -bench IntentVsFloor -benchtime 500x ./journal
func BenchmarkIntentVsFloor(b *testing.B) {
	dir := b.TempDir()
	j, err := Open(filepath.Join(dir, "journal.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	v := encodedRecord(b)
	f, err := os.OpenFile(filepath.Join(dir, "floor"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	begin := make([]time.Duration, 0, b.N)
	floor := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		r := newRecord("api-latency")
		start := time.Now()
		if err := j.Begin(&r); err != nil {
			b.Fatal(err)
		}
		begin = append(begin, time.Since(start))

		start = time.Now()
		if _, err := f.WriteAt(v, int64(i)*int64(len(v))); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		floor = append(floor, time.Since(start))
	}
	b.StopTimer()
	pb, pf := percentileOf(begin, 50), percentileOf(floor, 50)
	b.ReportMetric(float64(pb.Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentileOf(begin, 99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(pf.Microseconds()), "floor-p50-µs")
	b.ReportMetric(float64(pb)/float64(pf), "ratio")
}

// BenchmarkRunsPerSecond: how many runs a second the journal records, fsync on, with
// several experiments firing at once. A run is what the runner writes for it: the intent
// (Begin), active (Update) and the end (Update), three fsynced commits. bbolt has one
// writer, so concurrent runs queue for it; the figure is the journal's ceiling, not what
// any schedule needs.
//
//	go test -run '^$' -bench RunsPerSecond -benchtime 2s ./journal
func BenchmarkRunsPerSecond(b *testing.B) {
	for _, c := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrent=%d", c), func(b *testing.B) {
			j := openTemp(b, Options{})
			var wg sync.WaitGroup
			var next sync.Mutex
			left := b.N
			start := time.Now()
			for range c {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						if left == 0 {
							next.Unlock()
							return
						}
						left--
						next.Unlock()
						if err := oneRun(j); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
		})
	}
}

func oneRun(j *Journal) error {
	r := newRecord("api-latency")
	if err := j.Begin(&r); err != nil {
		return err
	}
	if _, err := j.Update(r.ID, func(x *Record) error {
		x.Status, x.AppliedAt = Active, x.StartedAt.Add(time.Millisecond)
		return nil
	}); err != nil {
		return err
	}
	_, err := j.Update(r.ID, func(x *Record) error {
		x.Status, x.Cleanup, x.EndedAt = Succeeded, CleanupDone, x.PlannedEnd
		return nil
	})
	return err
}

// BenchmarkSize reports the journal file's size for a million runs (the journal the read
// benchmarks use; CHAOSCRON_BENCH_RUNS sets the count) and for the same number of runs
// written with retention, as the agent prunes: at most 10,000 runs kept, pruned after every
// 10,000 appended. bbolt never shrinks its file, but reuses the pages pruning frees, so with
// retention the file stays bounded.
//
//	CHAOSCRON_BENCH_RUNS=1000000 go test -run '^$' -bench Size -benchtime 1x ./journal
func BenchmarkSize(b *testing.B) {
	n := benchRuns(b)
	b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
		b.ReportMetric(float64(fileSize(b, benchJournal(b, n, 0)))/1e6, "MB")
	})
	b.Run(fmt.Sprintf("runs=%d/max_runs=10000", n), func(b *testing.B) {
		// Built once per test binary whatever b.N is: it takes a while, and its size is
		// the same every time.
		if retained.n != n {
			retained.n, retained.mb = n, retainedSize(b, n, 10_000)
		}
		b.ReportMetric(retained.mb, "MB")
	})
}

var retained struct {
	n  int
	mb float64
}

// retainedSize writes n runs into a new journal, pruning to keep runs after every keep
// appended, and returns the file's size in MB.
func retainedSize(b *testing.B, n, keep int) float64 {
	path := filepath.Join(b.TempDir(), "retained.db")
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; done += keep {
		bulkLoad(b, j, min(keep, n-done), 0, nil)
		if _, err := j.Prune(keep, 0, t0); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	return float64(fileSize(b, path)) / 1e6
}

// percentileOf is the p-th percentile (0..100) of d; d is sorted in place.
func percentileOf(d []time.Duration, p int) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

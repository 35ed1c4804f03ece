package journal

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchRunsEnv sets the size of the big journal the read benchmarks use, independently
// of -benchtime: go test -bench List50 -run '^$' with CHAOSCRON_BENCH_RUNS=1000000.
const benchRunsEnv = "CHAOSCRON_BENCH_RUNS"

var bench struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

// benchJournal returns the path of a journal of n runs (one in openEvery open), built
// once per test binary run and shared by the benchmarks: building a million runs takes
// a while, and benchmarks run their function several times.
func benchJournal(b *testing.B, n, openEvery int) string {
	b.Helper()
	bench.Lock()
	defer bench.Unlock()
	key := fmt.Sprintf("%d-%d", n, openEvery)
	if p, ok := bench.paths[key]; ok {
		return p
	}
	if bench.dir == "" {
		d, err := os.MkdirTemp("", "chaoscron-journal-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bench.dir, bench.paths = d, map[string]string{}
	}
	path := filepath.Join(bench.dir, key+".db")
	start := time.Now()
	j, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	bulkLoad(b, j, n, openEvery, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) })
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d runs (%.0f MB) in %v", n, float64(fileSize(b, path))/1e6, time.Since(start).Round(time.Millisecond))
	bench.paths[key] = path
	return path
}

func cleanupBenchJournals() {
	if bench.dir != "" {
		_ = os.RemoveAll(bench.dir)
	}
}

func benchRuns(b *testing.B) int {
	n := 200_000
	if s := os.Getenv(benchRunsEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 100 {
			b.Fatalf("%s=%q: want a number of runs, at least 100", benchRunsEnv, s)
		}
		n = v
	}
	return n
}

// reportPercentiles adds the median and 99th percentile of per-operation times, which
// say more about fsync-bound work than the mean.
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// timeBegins times b.N Begins on j, one at a time, and reports their percentiles.
func timeBegins(b *testing.B, j *Journal) {
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := newRecord("api-latency")
		start := time.Now()
		if err := j.Begin(&r); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

// BenchmarkBegin is the write-ahead commit with fsync, as the runner does it before
// every fault. BenchmarkWriteFdatasync is the floor to compare it with.
func BenchmarkBegin(b *testing.B) {
	j := openTemp(b, Options{})
	timeBegins(b, j)
}

// BenchmarkBeginNoSync is Begin without fsync: what the encoding and bbolt cost.
func BenchmarkBeginNoSync(b *testing.B) {
	j := openTemp(b, Options{NoSync: true})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := newRecord("api-latency")
		if err := j.Begin(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate is the status change after injection (read, modify, write, fsync).
func BenchmarkUpdate(b *testing.B) {
	j := openTemp(b, Options{})
	r := newRecord("api-latency")
	if err := j.Begin(&r); err != nil {
		b.Fatal(err)
	}
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		_, err := j.Update(r.ID, func(r *Record) error {
			r.Status = Active
			r.AppliedAt = t0.Add(time.Duration(i))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

// BenchmarkList50 is `journal list --limit 50` on a big journal.
func BenchmarkList50(b *testing.B) {
	n := benchRuns(b)
	path := benchJournal(b, n, 0)
	j, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rs, err := j.List(Filter{Limit: 50})
			if err != nil || len(rs) != 50 || rs[0].ID != uint64(n) {
				b.Fatalf("List: %d runs, %v", len(rs), err)
			}
		}
	})
}

// BenchmarkOpenRuns: 100 open runs among 10k and 100k. The cost follows the open runs,
// not the journal: the two should be about the same.
func BenchmarkOpenRuns(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		path := benchJournal(b, n, n/100)
		j, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rs, err := j.OpenRuns()
				if err != nil || len(rs) != 100 {
					b.Fatalf("OpenRuns: %d runs, %v", len(rs), err)
				}
			}
		})
		j.Close()
	}
}

// BenchmarkOpen is what Open and its checks cost: on journals small enough for Open to
// walk the whole tree (up to fullCheckBytes), and on a big one, where it reads the
// meta, the open index (100 open runs; none in the big one) and the last run only.
func BenchmarkOpen(b *testing.B) {
	for _, c := range []struct{ n, openEvery int }{{1_000, 10}, {10_000, 100}, {benchRuns(b), 0}} {
		n := c.n
		path := benchJournal(b, n, c.openEvery)
		b.Logf("%d runs: %.1f MB", n, float64(fileSize(b, path))/1e6)
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				j, err := Open(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				j.Close()
			}
		})
	}
}

// BenchmarkStats reads every run.
func BenchmarkStats(b *testing.B) {
	n := benchRuns(b)
	j, err := Open(benchJournal(b, n, 0), Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if s, err := j.Stats(); err != nil || s.Runs != n {
				b.Fatalf("Stats: %+v, %v", s, err)
			}
		}
	})
}

// encodedRecord is what Begin writes as the record's value.
func encodedRecord(b *testing.B) []byte {
	r := newRecord("api-latency")
	r.ID = 1
	v, err := json.Marshal(&r)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkBeginAfterPrune is Begin right after pruning 100k runs to 10k, before
// compaction: bbolt writes its whole freelist (here some 12,000 free pages) with every
// commit, so a big prune costs every later Begin until Compact or until new runs have
// reused the pages.
func BenchmarkBeginAfterPrune(b *testing.B) {
	j := openTemp(b, Options{})
	bulkLoad(b, j, 100_000, 0, nil)
	if _, err := j.Prune(10_000, 0, t0); err != nil {
		b.Fatal(err)
	}
	timeBegins(b, j)
}

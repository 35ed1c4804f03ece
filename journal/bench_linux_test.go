package journal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWriteFdatasync appends the bytes of one encoded record to a file and
// fdatasyncs it: the least any durable write of a run can cost on this disk. Begin
// (bbolt's commit) does two of these, pages then meta page, so about twice this is
// the floor for BenchmarkBegin.
func BenchmarkWriteFdatasync(b *testing.B) {
	v := encodedRecord(b)
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "floor"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := f.WriteAt(v, int64(i)*int64(len(v))); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

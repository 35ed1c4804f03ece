package journal

import "testing"

// BenchmarkPutVsUpdate: the CPU of writing a live run back, by its owner (Put) or through a
// read-modify-write (Update), without fsync so that the CPU shows.
func BenchmarkPutVsUpdate(b *testing.B) {
	for _, put := range []bool{false, true} {
		name := map[bool]string{false: "update", true: "put"}[put]
		b.Run(name, func(b *testing.B) {
			j := openTemp(b, Options{NoSync: true})
			r := newRecord("bench")
			if err := j.Begin(&r); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				r.Reason = name
				var err error
				if put {
					err = j.Put(&r)
				} else {
					_, err = j.Update(r.ID, func(x *Record) error { x.Reason = name; return nil })
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package disk

import (
	"context"
	"fmt"
	"sync"
)

// fills serialises the sizing and allocation of this agent's fills, per filesystem.
//
// Sizing a fill reads the free space and filling changes it: two fills sized at the same
// time both count the space neither has taken yet, and together cut into the reserve (or run
// the disk out, with percent). Held under the lock from statfs until the blocks are
// allocated and synced, every fill is sized against the ones before it, which statfs then
// counts, so no tally of bytes in flight is needed. The fills are separate Fault values (one
// per experiment) on a filesystem they share, so the lock cannot live in any one of them:
// keyed by st_dev, it is the one piece of state this package shares between faults.
var fills = struct {
	sync.Mutex
	dev map[uint64]chan struct{}
}{dev: map[uint64]chan struct{}{}}

// lockDev takes the fill lock of device dev, or gives up when ctx ends.
func lockDev(ctx context.Context, dev uint64) (unlock func(), err error) {
	fills.Lock()
	ch := fills.dev[dev]
	if ch == nil {
		ch = make(chan struct{}, 1)
		fills.dev[dev] = ch
	}
	fills.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the other fills of device %s: %w", devString(dev), ctx.Err())
	}
}

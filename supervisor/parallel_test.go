package supervisor

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallelSlots: a bound of n lets n operations run at once and no
// more, no bound lets all run, and a cancelled wait gives the cause.
func TestParallelSlots(t *testing.T) {
	for _, n := range []int{1, 3, -1} {
		ctx := withParallel(context.Background(), n)
		var running, most atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				release, err := acquireSlot(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				defer release()
				now := running.Add(1)
				for {
					m := most.Load()
					if now <= m || most.CompareAndSwap(m, now) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				running.Add(-1)
			}()
		}
		wg.Wait()
		if n > 0 && most.Load() != int32(n) || n <= 0 && most.Load() < 2 {
			t.Errorf("bound %d: at most %d at once", n, most.Load())
		}
	}

	cause := errors.New("client gone")
	ctx, cancel := context.WithCancelCause(withParallel(context.Background(), 1))
	release, _ := acquireSlot(ctx)
	defer release()
	cancel(cause)
	if _, err := acquireSlot(ctx); !errors.Is(err, cause) {
		t.Errorf("wait on a cancelled request: %v", err)
	}
}

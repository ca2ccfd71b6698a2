package supervisor

import "context"

// slotsKey carries a request's --parallel bound in its context.
type slotsKey struct{}

// withParallel bounds the container operations (create and start of a
// replica, a stop, a removal) that the request of ctx runs at once to n,
// compose's --parallel; n <= 0 leaves them unbounded.
func withParallel(ctx context.Context, n int) context.Context {
	if n <= 0 {
		return ctx
	}
	return context.WithValue(ctx, slotsKey{}, make(chan struct{}, n))
}

// acquireSlot waits for one of the request's slots, and returns the
// function that frees it. Callers take one around a single container's
// operation and never while holding another, so that a bound of 1 cannot
// deadlock.
func acquireSlot(ctx context.Context) (release func(), err error) {
	slots, _ := ctx.Value(slotsKey{}).(chan struct{})
	if slots == nil {
		return func() {}, nil
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

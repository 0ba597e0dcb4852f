package mirror

import "time"

// Clock tells the time and waits. The Mirror uses it for cache expiry, Retry-After dates and the
// waits between retries, so that tests can run those without sleeping.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

package alertsource

import (
	"math/rand/v2"
	"time"
)

// Backoff computes exponential back-off delays with jitter: after the n-th
// consecutive failure (n from 0) the delay is drawn uniformly from
// [d/2, d], d = min(Max, Base·2^n) ("equal jitter": spread out so that many
// clients do not retry in step, never less than half the nominal delay).
// The random source is seeded, so a sequence of delays is reproducible.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
	rng  *rand.Rand
	n    int
}

// Back-off defaults.
const (
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 2 * time.Minute
)

// NewBackoff returns a Backoff; zero durations take the defaults.
func NewBackoff(base, maxDelay time.Duration, seed uint64) *Backoff {
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if maxDelay <= 0 {
		maxDelay = DefaultBackoffMax
	}
	maxDelay = max(maxDelay, base)
	return &Backoff{Base: base, Max: maxDelay, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Next returns the delay before the next attempt and counts a failure.
func (b *Backoff) Next() time.Duration {
	d := b.Base
	for i := 0; i < b.n && d < b.Max; i++ {
		if d > b.Max/2 {
			d = b.Max
			break
		}
		d *= 2
	}
	d = min(d, b.Max)
	b.n++
	half := d / 2
	return half + time.Duration(b.rng.Int64N(int64(d-half)+1))
}

// Reset forgets the failures (after a success).
func (b *Backoff) Reset() { b.n = 0 }

// Failures returns the number of consecutive failures counted.
func (b *Backoff) Failures() int { return b.n }

package webhook

import (
	"container/heap"
	"sync"
	"time"
)

// replayCache remembers the requests accepted within the timestamp window
// so that a replayed one is refused. Each entry expires when its timestamp
// leaves the window (the window check refuses it from then on), so memory
// is bounded by the request rate times the window, and by max.
type replayCache struct {
	mu      sync.Mutex
	max     int
	expires map[string]time.Time
	queue   expiryQueue
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, expires: map[string]time.Time{}}
}

// addResult is the outcome of add.
type addResult int

const (
	added addResult = iota
	replayed
	full
)

// add records key until expiry, unless it is already recorded (a replay)
// or the cache holds max live entries (full: refuse rather than forget one).
func (c *replayCache) add(key string, expiry, now time.Time) addResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && !c.queue[0].at.After(now) {
		e := heap.Pop(&c.queue).(expiryEntry)
		if c.expires[e.key].Equal(e.at) {
			delete(c.expires, e.key)
		}
	}
	if _, ok := c.expires[key]; ok {
		return replayed
	}
	if len(c.queue) >= c.max {
		return full
	}
	c.expires[key] = expiry
	heap.Push(&c.queue, expiryEntry{key: key, at: expiry})
	return added
}

// forget removes key so that the same request may be retried (after the
// sink failed on it). Its queue entry stays until it expires.
func (c *replayCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.expires, key)
}

type expiryEntry struct {
	key string
	at  time.Time
}

// expiryQueue is a min-heap of entries by expiry.
type expiryQueue []expiryEntry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiryEntry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

package webhook

import (
	"fmt"
	"testing"
	"time"
)

func TestReplayCacheExpiresAndStaysBounded(t *testing.T) {
	c := newReplayCache(100)
	t0 := time.Unix(1700000000, 0)
	if c.add("a", t0.Add(time.Minute), t0) != added || c.add("a", t0.Add(time.Minute), t0) != replayed {
		t.Fatal("a second add of a key is not a replay")
	}
	// Keys expire with their timestamps; memory follows the live ones.
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Second)
		if got := c.add(fmt.Sprint(i), now.Add(30*time.Second), now); got != added {
			t.Fatalf("key %d: %v", i, got)
		}
		if len(c.queue) > 31 || len(c.expires) > 31 {
			t.Fatalf("after %d keys the cache holds %d/%d entries", i+1, len(c.queue), len(c.expires))
		}
	}
	if c.add("a", t0.Add(2000*time.Second), t0.Add(1000*time.Second)) != added {
		t.Fatal("an expired key is still remembered")
	}
	c.forget("a")
	if c.add("a", t0.Add(2000*time.Second), t0.Add(1000*time.Second)) != added {
		t.Fatal("a forgotten key is still remembered")
	}
}

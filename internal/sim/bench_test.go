package sim

import (
	"testing"
	"time"
)

// BenchmarkEngine measures the bare engine: 1024 pending events, each of
// which reschedules itself a pseudo-random delay later, so every operation
// is one pop and one push on a heap of 1024.
func BenchmarkEngine(b *testing.B) {
	e := NewEngine(epoch)
	var x uint64 = 88172645463325252
	var f func()
	f = func() {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		e.Schedule(e.Elapsed()+time.Duration(x%1e9), f)
	}
	for range 1024 {
		f()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		e.Step()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkNetwork measures flow churn: 64 flows whose completions each
// start the next flow of the same sender. "shared": 16 senders share one
// link into 16 receivers, so every event recomputes the whole 64-flow
// component; "independent": each flow has its own sender, link and
// receiver, so every event recomputes one flow.
func BenchmarkNetwork(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "shared", false: "independent"}[shared]
		b.Run(name, func(b *testing.B) { benchNetwork(b, shared) })
	}
}

func benchNetwork(b *testing.B, shared bool) {
	e := NewEngine(epoch)
	n := NewNetwork(e)
	link, _ := n.AddResource(1.25e9)
	var x uint64 = 88172645463325252
	cbs := make([]func(), 64)
	for k := range cbs {
		o, _ := n.AddResource(1.25e8)
		i, _ := n.AddResource(1.25e8)
		path := []ResourceID{o, link, i}
		if shared {
			// 16 senders, 16 receivers, one link.
			path = []ResourceID{ResourceID(1 + 2*(k%16)), link, ResourceID(2 + 2*((k*7)%16))}
		} else {
			l, _ := n.AddResource(1.25e9)
			path[1] = l
		}
		cbs[k] = func() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			_, _ = n.StartFlow(path, float64(1e6+x%1e9), 0, cbs[k])
		}
		cbs[k]()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	ev0 := e.Events()
	for range b.N {
		e.Step()
	}
	b.ReportMetric(float64(e.Events()-ev0)/time.Since(start).Seconds(), "events/s")
}

package sim

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

type flowSpec struct {
	path  []ResourceID
	bytes float64
	cap   float64
	start time.Duration
}

// change is a capacity (res >= 0) or cap (flow >= 0) change at a time.
type change struct {
	at    time.Duration
	res   int
	flow  int
	value float64
}

func TestNetworkFairSharing(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name       string
		caps       []float64
		flows      []flowSpec
		changes    []change
		wantRates  []float64 // at time 0, after the first recomputation
		wantFinish []time.Duration
	}{
		{
			name:       "two flows share a link",
			caps:       []float64{100},
			flows:      []flowSpec{{path: []ResourceID{0}, bytes: 1000}, {path: []ResourceID{0}, bytes: 1000}},
			wantRates:  []float64{50, 50},
			wantFinish: []time.Duration{20 * time.Second, 20 * time.Second},
		},
		{
			name:       "a capped flow leaves its share to the other",
			caps:       []float64{100},
			flows:      []flowSpec{{path: []ResourceID{0}, bytes: 200, cap: 20}, {path: []ResourceID{0}, bytes: 800}},
			wantRates:  []float64{20, 80},
			wantFinish: []time.Duration{10 * time.Second, 10 * time.Second},
		},
		{
			name: "a flow bottlenecked elsewhere",
			caps: []float64{100, 30},
			flows: []flowSpec{
				{path: []ResourceID{0, 1}, bytes: 300},
				{path: []ResourceID{0}, bytes: 700},
			},
			wantRates:  []float64{30, 70},
			wantFinish: []time.Duration{10 * time.Second, 10 * time.Second},
		},
		{
			name: "parking lot",
			caps: []float64{10, 10, 10},
			flows: []flowSpec{
				{path: []ResourceID{0, 1, 2}, bytes: 50},
				{path: []ResourceID{0}, bytes: 50},
				{path: []ResourceID{1}, bytes: 50},
				{path: []ResourceID{2}, bytes: 100},
			},
			wantRates: []float64{5, 5, 5, 5},
			// At 10 s the first three end; the last has 50 left at 10/s.
			wantFinish: []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second, 15 * time.Second},
		},
		{
			name: "two bottleneck levels",
			caps: []float64{10, 4},
			flows: []flowSpec{
				{path: []ResourceID{0}, bytes: 40},
				{path: []ResourceID{0}, bytes: 40},
				{path: []ResourceID{0, 1}, bytes: 20},
				{path: []ResourceID{1}, bytes: 20},
			},
			wantRates:  []float64{4, 4, 2, 2},
			wantFinish: []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second},
		},
		{
			name:  "a finished flow frees bandwidth",
			caps:  []float64{100},
			flows: []flowSpec{{path: []ResourceID{0}, bytes: 100}, {path: []ResourceID{0}, bytes: 1000}},
			// Both at 50/s until 2 s, then 900 bytes at 100/s.
			wantRates:  []float64{50, 50},
			wantFinish: []time.Duration{2 * time.Second, 11 * time.Second},
		},
		{
			name:       "capacity change mid-flow",
			caps:       []float64{100},
			flows:      []flowSpec{{path: []ResourceID{0}, bytes: 1000}},
			changes:    []change{{at: 5 * time.Second, res: 0, flow: -1, value: 50}},
			wantRates:  []float64{100},
			wantFinish: []time.Duration{15 * time.Second},
		},
		{
			name:  "cut link makes no progress until restored",
			caps:  []float64{100},
			flows: []flowSpec{{path: []ResourceID{0}, bytes: 1000}},
			changes: []change{
				{at: 2 * time.Second, res: 0, flow: -1, value: 0},
				{at: 60 * time.Second, res: 0, flow: -1, value: 100},
			},
			wantRates:  []float64{100},
			wantFinish: []time.Duration{68 * time.Second},
		},
		{
			name:  "cap change mid-flow",
			caps:  []float64{100},
			flows: []flowSpec{{path: []ResourceID{0}, bytes: 1000, cap: 10}, {path: []ResourceID{0}, bytes: 9000}},
			// 0–10 s: 10 + 90; then uncapped: 50 + 50; the first has 900
			// left → 18 s more; the other has 8100 left: 900 at 50/s and
			// the rest at 100/s.
			changes:    []change{{at: 10 * time.Second, res: -1, flow: 0, value: 0}},
			wantRates:  []float64{10, 90},
			wantFinish: []time.Duration{28 * time.Second, 100 * time.Second},
		},
		{
			name:       "late start",
			caps:       []float64{100},
			flows:      []flowSpec{{path: []ResourceID{0}, bytes: 1000}, {path: []ResourceID{0}, bytes: 500, start: 5 * time.Second}},
			wantRates:  []float64{100, 0},
			wantFinish: []time.Duration{15 * time.Second, 15 * time.Second},
		},
		{
			name:       "no resources: rate is the cap",
			caps:       []float64{inf},
			flows:      []flowSpec{{path: nil, bytes: 100, cap: 10}, {path: []ResourceID{0}, bytes: 100, cap: 50}, {path: nil, bytes: 5}},
			wantRates:  []float64{10, 50, inf},
			wantFinish: []time.Duration{10 * time.Second, 2 * time.Second, 0},
		},
		{
			name:       "zero bytes",
			caps:       []float64{0},
			flows:      []flowSpec{{path: []ResourceID{0}, bytes: 0}},
			wantRates:  []float64{0},
			wantFinish: []time.Duration{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(epoch)
			n := NewNetwork(e)
			for _, c := range tt.caps {
				if _, err := n.AddResource(c); err != nil {
					t.Fatal(err)
				}
			}
			handles := make([]Flow, len(tt.flows))
			finish := make([]time.Duration, len(tt.flows))
			for i, fs := range tt.flows {
				e.Schedule(fs.start, func() {
					h, err := n.StartFlow(fs.path, fs.bytes, fs.cap, func() { finish[i] = e.Elapsed() })
					if err != nil {
						t.Fatal(err)
					}
					handles[i] = h
				})
			}
			for _, c := range tt.changes {
				e.Schedule(c.at, func() {
					var err error
					if c.res >= 0 {
						err = n.SetCapacity(ResourceID(c.res), c.value)
					} else {
						err = handles[c.flow].SetCap(c.value)
					}
					if err != nil {
						t.Fatal(err)
					}
				})
			}
			e.RunUntil(0)
			for i, want := range tt.wantRates {
				if got := handles[i].Rate(); !approx(got, want) && handles[i].Active() {
					t.Errorf("flow %d rate = %v, want %v", i, got, want)
				}
			}
			e.Run()
			for i, want := range tt.wantFinish {
				if d := finish[i] - want; d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("flow %d finished at %v, want %v", i, finish[i], want)
				}
				if handles[i].Active() {
					t.Errorf("flow %d still active", i)
				}
			}
		})
	}
}

func approx(a, b float64) bool {
	if math.IsInf(b, 1) {
		return math.IsInf(a, 1)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func TestNetworkCancelAndCarried(t *testing.T) {
	e := NewEngine(epoch)
	n := NewNetwork(e)
	r0, _ := n.AddResource(100)
	r1, _ := n.AddResource(1000)
	done := false
	a, err := n.StartFlow([]ResourceID{r0, r1}, 1000, 0, func() { done = true })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := n.StartFlow([]ResourceID{r1}, 1e6, 0, nil)
	e.RunUntil(3 * time.Second)
	if got := a.Transferred(); !approx(got, 300) {
		t.Errorf("a transferred %v at 3 s, want 300", got)
	}
	if got, want := n.Load(r1), 1000.0; !approx(got, want) {
		t.Errorf("load of r1 = %v, want %v", got, want)
	}
	sent, ok := a.Cancel()
	if !ok || !approx(sent, 300) {
		t.Errorf("Cancel = %v, %v; want 300, true", sent, ok)
	}
	if _, ok := a.Cancel(); ok {
		t.Error("second Cancel reported ok")
	}
	e.RunUntil(4 * time.Second)
	if got := b.Rate(); got != 1000 {
		t.Errorf("b rate after cancel = %v, want 1000", got)
	}
	if got := n.Carried(r0); !approx(got, 300) {
		t.Errorf("r0 carried %v, want 300", got)
	}
	// b: 900/s for 3 s, then 1000/s for 1 s.
	if got := n.Carried(r1); !approx(got, 300+2700+1000) {
		t.Errorf("r1 carried %v, want 4000", got)
	}
	e.Run()
	if done {
		t.Error("done called for a cancelled flow")
	}
	if got := n.Carried(r1); !approx(got, 300+1e6) {
		t.Errorf("r1 carried %v at the end, want %v", got, 300+1e6)
	}
	if a.Rate() != 0 || a.Transferred() != 0 || a.Remaining() != 0 || a.Cap() != 0 {
		t.Error("ended flow reports non-zero values")
	}
}

func TestNetworkDoneNeverSynchronous(t *testing.T) {
	e := NewEngine(epoch)
	n := NewNetwork(e)
	called := false
	if _, err := n.StartFlow(nil, 0, 0, func() { called = true }); err != nil {
		t.Fatal(err)
	}
	if called {
		t.Fatal("done called from StartFlow")
	}
	e.Run()
	if !called {
		t.Fatal("done never called")
	}
}

func TestNetworkBadInput(t *testing.T) {
	e := NewEngine(epoch)
	n := NewNetwork(e)
	r, _ := n.AddResource(10)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"negative capacity", second(n.AddResource(-1)), ErrBadValue},
		{"NaN capacity", second(n.AddResource(math.NaN())), ErrBadValue},
		{"unknown resource capacity", n.SetCapacity(7, 1), ErrBadResource},
		{"NaN set capacity", n.SetCapacity(r, math.NaN()), ErrBadValue},
		{"negative bytes", second(n.StartFlow([]ResourceID{r}, -1, 0, nil)), ErrBadValue},
		{"infinite bytes", second(n.StartFlow([]ResourceID{r}, math.Inf(1), 0, nil)), ErrBadValue},
		{"negative cap", second(n.StartFlow([]ResourceID{r}, 1, -1, nil)), ErrBadValue},
		{"unknown resource in path", second(n.StartFlow([]ResourceID{r, 9}, 1, 0, nil)), ErrBadResource},
		{"repeated resource", second(n.StartFlow([]ResourceID{r, r}, 1, 0, nil)), ErrBadValue},
		{"cap of ended flow", Flow{}.SetCap(1), ErrBadValue},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if n.Capacity(-1) != 0 || n.Carried(99) != 0 || n.Load(99) != 0 {
		t.Error("unknown resource reports non-zero values")
	}
	f, _ := n.StartFlow([]ResourceID{r}, 1, 0, nil)
	if err := f.SetCap(math.NaN()); !errors.Is(err, ErrBadValue) {
		t.Errorf("NaN cap: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// checkMaxMin verifies the max-min fairness conditions on the network's
// current rates: no resource over capacity, and every flow either at its
// cap or crossing a saturated resource on which it has the largest rate.
func checkMaxMin(n *Network, flows []Flow) error {
	const tol = 1e-9
	n.flush()
	load := make([]float64, len(n.res))
	maxRate := make([]float64, len(n.res))
	for _, h := range flows {
		if !h.Active() {
			continue
		}
		f := &n.flows[h.id]
		for _, r := range f.path {
			load[r] += f.rate
			maxRate[r] = math.Max(maxRate[r], f.rate)
		}
	}
	saturated := make([]bool, len(n.res))
	for r := range n.res {
		c := n.res[r].capacity
		if load[r] > c*(1+tol)+tol {
			return fmt.Errorf("resource %d carries %v > capacity %v", r, load[r], c)
		}
		saturated[r] = load[r] >= c*(1-tol)-tol
	}
	for i, h := range flows {
		if !h.Active() {
			continue
		}
		f := &n.flows[h.id]
		if f.rate >= f.cap*(1-tol) {
			continue
		}
		ok := false
		for _, r := range f.path {
			if saturated[r] && f.rate >= maxRate[r]*(1-tol) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("flow %d (rate %v, cap %v, path %v) is neither capped nor maximal on a saturated resource", i, f.rate, f.cap, f.path)
		}
	}
	return nil
}

func TestNetworkMaxMinProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := NewEngine(epoch)
		n := NewNetwork(e)
		nres := rapid.IntRange(1, 8).Draw(t, "resources")
		capGen := rapid.OneOf(rapid.Float64Range(1, 1000), rapid.Just(0.0), rapid.Just(math.Inf(1)))
		for range nres {
			if _, err := n.AddResource(capGen.Draw(t, "capacity")); err != nil {
				t.Fatal(err)
			}
		}
		nflows := rapid.IntRange(1, 20).Draw(t, "flows")
		flows := make([]Flow, nflows)
		paths := make([][]ResourceID, nflows)
		delivered := make([]float64, nflows) // bytes of ended flows
		flowCap := rapid.OneOf(rapid.Float64Range(0.5, 500), rapid.Just(0.0))
		for i := range nflows {
			ids := make([]int, nres)
			for j := range ids {
				ids[j] = j
			}
			perm := rapid.Permutation(ids).Draw(t, "order")
			k := rapid.IntRange(1, min(nres, 4)).Draw(t, "pathlen")
			for _, r := range perm[:k] {
				paths[i] = append(paths[i], ResourceID(r))
			}
			bytes := rapid.Float64Range(0, 5000).Draw(t, "bytes")
			start := time.Duration(rapid.IntRange(0, 20).Draw(t, "start")) * time.Second
			c := flowCap.Draw(t, "cap")
			e.Schedule(start, func() {
				h, err := n.StartFlow(paths[i], bytes, c, func() { delivered[i] = bytes })
				if err != nil {
					t.Fatal(err)
				}
				flows[i] = h
			})
		}
		nchanges := rapid.IntRange(0, 10).Draw(t, "changes")
		for range nchanges {
			at := time.Duration(rapid.IntRange(0, 40).Draw(t, "at")) * time.Second
			if rapid.Bool().Draw(t, "capacity change") {
				r := ResourceID(rapid.IntRange(0, nres-1).Draw(t, "res"))
				v := capGen.Draw(t, "value")
				e.Schedule(at, func() { _ = n.SetCapacity(r, v) })
			} else {
				i := rapid.IntRange(0, nflows-1).Draw(t, "flow")
				v := flowCap.Draw(t, "value")
				cancel := rapid.Bool().Draw(t, "cancel")
				e.Schedule(at, func() {
					if cancel {
						if sent, ok := flows[i].Cancel(); ok {
							delivered[i] = sent
						}
						return
					}
					_ = flows[i].SetCap(v)
				})
			}
		}
		// Restore every resource late so that everything finishes.
		for r := range nres {
			e.Schedule(time.Hour, func() { _ = n.SetCapacity(ResourceID(r), 1) })
		}
		for e.Step() {
			if err := checkMaxMin(n, flows); err != nil {
				t.Fatalf("at %v: %v", e.Elapsed(), err)
			}
		}
		want := make([]float64, nres)
		for i, p := range paths {
			if flows[i].Active() {
				t.Fatalf("flow %d still active at the end", i)
			}
			for _, r := range p {
				want[r] += delivered[i]
			}
		}
		for r := range nres {
			got := n.Carried(ResourceID(r))
			if math.Abs(got-want[r]) > 1e-9*math.Max(1, want[r]) {
				t.Fatalf("resource %d carried %v bytes, flows delivered %v", r, got, want[r])
			}
		}
	})
}

func TestNetworkNoAllocsSteadyState(t *testing.T) {
	e := NewEngine(epoch)
	n := NewNetwork(e)
	link, _ := n.AddResource(1e9)
	var nics []ResourceID
	for range 8 {
		r, _ := n.AddResource(1.25e8)
		nics = append(nics, r)
	}
	cbs := make([]func(), 8)
	for i := range cbs {
		path := []ResourceID{nics[i], link}
		cbs[i] = func() { _, _ = n.StartFlow(path, 1e7*float64(i+1), 0, cbs[i]) }
		cbs[i]()
	}
	for range 1000 {
		e.Step()
	}
	allocs := testing.AllocsPerRun(1000, func() { e.Step() })
	if allocs != 0 {
		t.Errorf("%.2f allocations per event, want 0", allocs)
	}
}

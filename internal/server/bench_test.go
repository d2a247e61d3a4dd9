package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/store"
)

// benchVMs is the size of the federation the API benchmark serves.
const benchVMs = 100_000

// BenchmarkAPI100k serves a generated federation of 100k VMs on 1000 hosts
// whose placements are all in the store, and reports the p99 latency of
// API reads (a VM, the status, the operations) and of starting an
// evacuation of one site (202 answered: planned, journaled, first
// migrations started), and the process's RSS (budget 200 MB).
func BenchmarkAPI100k(b *testing.B) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(controller.MemoryLimit)) // as refuge serve does
	b.Logf("RSS at start: %s", rssLine())
	fed, err := fedgen.Generate(fedgen.Options{Hosts: 1000, VMs: benchVMs, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	b.Logf("RSS with the federation: %s", rssLine())
	e := newEnvWith(b, fed, 1)
	runtime.GC()
	b.Logf("RSS with the controller: %s", rssLine())
	ctx := context.Background()
	steps := make([]store.VMStep, 0, len(fed.VMs))
	for _, vm := range fed.VMs {
		steps = append(steps, store.VMStep{VM: vm.Name, State: store.VMMigrated, To: vm.Host})
	}
	t0 := time.Now()
	if err := e.st.PutSteps(ctx, nil, "op-seed", steps...); err != nil {
		b.Fatal(err)
	}
	b.Logf("stored %d placements and journal records in %v", len(steps), time.Since(t0).Round(time.Millisecond))
	b.Logf("RSS with %d VMs served and stored: %s", benchVMs, rssLine())

	rng := rand.New(rand.NewPCG(1, 2))
	reads := map[string]func() string{
		"vm":         func() string { return "/v1/vms/" + fed.VMs[rng.IntN(len(fed.VMs))].Name },
		"status":     func() string { return "/v1/status" },
		"operations": func() string { return "/v1/operations" },
	}
	for _, name := range slices.Sorted(mapsKeys(reads)) {
		b.Run("read-"+name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				path := reads[name]()
				t := time.Now()
				if code, body, _ := e.do("GET", path, "viewer", ""); code != 200 {
					b.Fatalf("GET %s: %d %.200s", path, code, body)
				}
				lat = append(lat, time.Since(t))
			}
			reportLatency(b, lat)
		})
	}
	b.Run("evacuation-start", func(b *testing.B) {
		var lat []time.Duration
		site := 0
		for b.Loop() {
			body := fmt.Sprintf(`{"site":%q,"deadline":"1h"}`, fed.Sites[site%len(fed.Sites)].Name)
			site++
			t := time.Now()
			code, resp, _ := e.do("POST", "/v1/evacuations", "operator", body)
			lat = append(lat, time.Since(t))
			if code != 202 {
				b.Fatalf("POST /v1/evacuations: %d %.300s", code, resp)
			}
			var a Accepted
			if err := json.Unmarshal(resp, &a); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if code, resp, _ := e.do("POST", "/v1/evacuations/"+a.OperationID+"/cancel", "operator", ""); code != 202 {
				b.Fatalf("cancel: %d %.300s", code, resp)
			}
			b.StartTimer()
		}
		reportLatency(b, lat)
	})
	b.Logf("RSS at the end: %s", rssLine())
	rss := rssMiB(b)
	b.ReportMetric(rss, "RSS-MiB")
	if rss > 200 {
		b.Errorf("RSS %.0f MiB with %d VMs, budget 200 MiB", rss, benchVMs)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	p := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / 1e6
	}
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// rssMiB reads the process's resident set size.
func rssMiB(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func rssLine() string {
	data, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Rss") || strings.HasPrefix(line, "VmRSS") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return strings.Join(out, ", ") + fmt.Sprintf(", Go heap in use %d MiB", ms.HeapInuse>>20)
}

package precopy

import (
	"math"
	"testing"
	"time"
)

const mib = 1 << 20

var cfg = Config{MaxDowntime: 300 * time.Millisecond, AutoConverge: true}

func TestGoodputFromEthernetFraming(t *testing.T) {
	line := 1e9 / 8 // 1 GbE in bytes/s
	if got, want := Goodput(line, 0)*8/1e6, 941.48; math.Abs(got-want) > 0.01 {
		t.Errorf("1 GbE goodput %.2f Mbit/s, want %.2f (1448/1538 of the line rate)", got, want)
	}
	if Goodput(line, 82) >= Goodput(line, 0) {
		t.Error("tunnel overhead does not reduce goodput")
	}
}

// TestSeed000Calibration: the two measurements of seed 000 (2 GB VM, 1 GbE,
// shared storage): 25.1 s inside a fabric, 26.2 s between fabrics joined by
// EtherIP over IPsec. See docs/calibration.md.
func TestSeed000Calibration(t *testing.T) {
	g := Guest{MemoryBytes: 2048 * mib, DirtyRate: 30 * mib, WorkingSet: 256 * mib}
	for _, c := range []struct {
		name     string
		overhead int
		rtt      time.Duration
		want     float64
	}{
		{"intra-fabric", 0, 200 * time.Microsecond, 25.1},
		{"inter-fabric", 82, 4 * time.Millisecond, 26.2},
	} {
		e := Solo(g, cfg, Goodput(1e9/8, c.overhead), c.rtt)
		got := e.Total.Seconds()
		if !e.Converges || math.Abs(got-c.want)/c.want > 0.10 {
			t.Errorf("%s: %.2f s (converges %v), want %.1f s ± 10 %%", c.name, got, e.Converges, c.want)
		}
		if e.Downtime > cfg.MaxDowntime+SwitchoverOverhead {
			t.Errorf("%s: downtime %s above the limit plus switch-over", c.name, e.Downtime)
		}
	}
}

func TestNoDirtyingSendsMemoryOnce(t *testing.T) {
	g := Guest{MemoryBytes: 1024 * mib}
	e := Solo(g, cfg, 100*mib, 0)
	if e.Rounds != 1 || e.Bytes != 1024*mib {
		t.Errorf("idle guest: %d rounds, %.0f bytes; want 1 round of exactly the memory", e.Rounds, e.Bytes)
	}
	want := Setup(0) + 10240*time.Millisecond + SwitchoverOverhead
	if d := e.Total - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("total %s, want %s", e.Total, want)
	}
}

func TestDirtyRateAboveBandwidth(t *testing.T) {
	g := Guest{MemoryBytes: 1024 * mib, DirtyRate: 200 * mib}
	without := Solo(g, Config{MaxDowntime: 300 * time.Millisecond}, 100*mib, 0)
	if without.Converges || without.Rounds != MaxRoundsWithoutThrottle {
		t.Errorf("without auto-converge: converges %v after %d rounds, want failure after %d", without.Converges, without.Rounds, MaxRoundsWithoutThrottle)
	}
	with := Solo(g, cfg, 100*mib, 0)
	if !with.Converges {
		t.Fatal("auto-converge did not make the migration converge")
	}
	st := NewState(g, cfg)
	for !st.Switchover {
		st.RoundDone(time.Duration(st.Remaining / (100 * mib) * float64(time.Second)))
	}
	if st.Throttle < ThrottleInitial || st.Throttle > ThrottleMax {
		t.Errorf("throttle %.2f outside [%.2f, %.2f]", st.Throttle, ThrottleInitial, ThrottleMax)
	}
}

func TestWorkingSetBoundsRetransmission(t *testing.T) {
	big := Solo(Guest{MemoryBytes: 4096 * mib, DirtyRate: 50 * mib}, cfg, 100*mib, 0)
	small := Solo(Guest{MemoryBytes: 4096 * mib, DirtyRate: 50 * mib, WorkingSet: 64 * mib}, cfg, 100*mib, 0)
	if small.Bytes >= big.Bytes {
		t.Errorf("a 64 MiB working set sent %.0f bytes, not fewer than the unbounded %.0f", small.Bytes, big.Bytes)
	}
	if small.Bytes > 4096*mib+3*64*mib {
		t.Errorf("with a 64 MiB working set, %.0f MiB sent", small.Bytes/mib)
	}
}

func TestDiskCopiedFirst(t *testing.T) {
	e := Solo(Guest{MemoryBytes: 1024 * mib, DiskBytes: 10240 * mib}, cfg, 100*mib, 0)
	if e.Bytes != 11264*mib {
		t.Errorf("bytes %.0f MiB, want disk + memory = 11264 MiB", e.Bytes/mib)
	}
}

func TestZeroRate(t *testing.T) {
	if e := Solo(Guest{MemoryBytes: mib}, cfg, 0, 0); e.Converges {
		t.Error("a migration with no bandwidth was predicted to converge")
	}
}

// TestHopelessGuestsEndInFailure: guests that cannot converge even at the
// largest throttle, or with a zero downtime limit, end in failure instead of
// iterating for ever.
func TestHopelessGuestsEndInFailure(t *testing.T) {
	for name, c := range map[string]struct {
		g   Guest
		cfg Config
	}{
		"dirtier than the link at 99% throttle": {Guest{MemoryBytes: 1024 * mib, DirtyRate: 100000 * mib}, cfg},
		"zero downtime limit":                   {Guest{MemoryBytes: 1024 * mib, DirtyRate: 10 * mib}, Config{AutoConverge: true}},
	} {
		e := Solo(c.g, c.cfg, 100*mib, 0)
		if e.Converges || e.Rounds > MaxRounds {
			t.Errorf("%s: converges %v after %d rounds, want failure within %d", name, e.Converges, e.Rounds, MaxRounds)
		}
	}
}

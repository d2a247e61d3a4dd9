package monitor

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBoardSize(t *testing.T) {
	for _, tc := range []struct{ hosts, n int }{
		{1, 1}, {4, 4}, {10, 4}, {16, 4}, {17, 5}, {25, 5}, {26, 6}, {30, 6}, {100, 10}, {110, 11}, {1_000_000, 1000}, {999_999, 1000},
	} {
		n, err := BoardSize(tc.hosts)
		if err != nil || n != tc.n {
			t.Errorf("BoardSize(%d) = %d, %v, want %d", tc.hosts, n, err, tc.n)
		}
	}
	if _, err := BoardSize(0); !errors.Is(err, ErrNoHosts) {
		t.Errorf("0 hosts: %v", err)
	}
	for _, h := range []int{2, 3} {
		if _, err := BoardSize(h); !errors.Is(err, ErrUnfillable) {
			t.Errorf("%d hosts: %v", h, err)
		}
		if _, err := Assign(h, Level1, 0); !errors.Is(err, ErrUnfillable) {
			t.Errorf("Assign(%d): %v", h, err)
		}
	}
	if _, err := Assign(16, 3, 0); !errors.Is(err, ErrBadLevel) {
		t.Errorf("level 3: %v", err)
	}
}

func TestBoardFilling(t *testing.T) {
	for hosts := 4; hosts <= 200; hosts++ {
		b, err := NewBoard(hosts, uint64(hosts))
		if err != nil {
			t.Fatal(err)
		}
		n := b.N
		count := make([]int, hosts)
		for _, h := range b.Square {
			count[h]++
		}
		lo, hi := slices.Min(count), slices.Max(count)
		if lo < 1 {
			t.Fatalf("%d hosts: a host is off the board", hosts)
		}
		if hi-lo > 1 && n*n < 2*hosts {
			t.Fatalf("%d hosts: duplicates unbalanced (%d..%d squares per host)", hosts, lo, hi)
		}
		seen := map[int32]bool{}
		for r := range n {
			h := b.Square[r*n+int(b.Queen[r])]
			if seen[h] {
				t.Fatalf("%d hosts: host %d is on two queen squares", hosts, h)
			}
			seen[h] = true
		}
		for h := range hosts {
			for _, s := range b.SquaresOf(h) {
				if int(b.Square[s]) != h {
					t.Fatalf("SquaresOf(%d) lists square %d holding %d", h, s, b.Square[s])
				}
			}
		}
	}
	a, _ := NewBoard(50, 7)
	b, _ := NewBoard(50, 7)
	if !slices.Equal(a.Square, b.Square) {
		t.Fatal("same seed, different boards")
	}
}

// TestCoverage: at Level 1 every non-queen host is monitored once, at
// Level 2 twice; queens by the controller.
func TestCoverage(t *testing.T) {
	for _, hosts := range []int{4, 9, 16, 25, 30, 100, 101, 1000} {
		for _, l := range []Level{Level1, Level2} {
			a, err := Assign(hosts, l, 1)
			if err != nil {
				t.Fatal(err)
			}
			cov := Coverage(a)
			for h, c := range cov {
				_, queen := a.Role(h)
				want := int(l)
				if queen {
					want = 1
				}
				if c < want {
					t.Fatalf("%d hosts L%d: host %d has %d monitors, want %d", hosts, l, h, c, want)
				}
				if hosts == a.Board.N*a.Board.N && c != want {
					t.Fatalf("%d hosts L%d: host %d has %d monitors, want exactly %d", hosts, l, h, c, want)
				}
			}
		}
	}
}

// TestFigure2c follows the paper's example: n = 4, queens at (x, y) =
// (3,1), (1,2), (4,3), (2,4); the queen on (3,1) fails and (1,1), (2,1),
// (4,1), (3,2), (3,3), (3,4) are monitored by (1,2), (2,4), (4,3), (1,2),
// (4,3), (2,4).
func TestFigure2c(t *testing.T) {
	// (x, y) 1-based → row y-1, column x-1.
	sq := func(x, y int) int { return (y-1)*4 + x - 1 }
	q := []int{2, 0, 3, 1} // row → column
	for _, l := range []Level{Level1, Level2} {
		a, err := assignSolution(q, l)
		if err != nil {
			t.Fatal(err)
		}
		failed := sq(3, 1)
		ch, err := a.Fail(failed)
		if err != nil {
			t.Fatal(err)
		}
		if !ch.Controller {
			t.Fatal("a queen's failure must change the controller's targets")
		}
		want := map[int]int{sq(1, 1): sq(1, 2), sq(2, 1): sq(2, 4), sq(4, 1): sq(4, 3), sq(3, 2): sq(1, 2), sq(3, 3): sq(4, 3), sq(3, 4): sq(2, 4)}
		for target, monitor := range want {
			if !slices.Contains(a.Targets(monitor), target) {
				t.Errorf("L%d: square %d should be monitored by %d after the failure; its targets: %v", l, target, monitor, a.Targets(monitor))
			}
		}
		if u := Unmonitored(a, 1); len(u) != 0 {
			t.Errorf("L%d: unmonitored after failure: %v", l, u)
		}
		// Replacement restores the level.
		ch, err = a.Replace(0)
		if err != nil || ch.Replacement < 0 {
			t.Fatalf("replace: %+v %v", ch, err)
		}
		if got := a.FailedRoles(); len(got) != 0 {
			t.Fatalf("failed roles after replace: %v", got)
		}
		for h, c := range Coverage(a) {
			if _, queen := a.Role(h); !a.Down(h) && !queen && c < int(l) {
				t.Errorf("L%d after replace: host %d has %d monitors", l, h, c)
			}
		}
		// The failed queen, once back, is monitored at the level too.
		a.Recover(failed)
		if c := Coverage(a)[failed]; c < int(l) {
			t.Errorf("L%d: recovered ex-queen has %d monitors", l, c)
		}
	}
}

// TestRandomFailures: whatever fails, every live host keeps a live
// monitor; replacing every failed queen restores the level where the row
// has a live candidate.
func TestRandomFailures(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := range 200 {
		hosts := 4 + rng.IntN(150)
		l := Level(1 + trial%2)
		a, err := Assign(hosts, l, uint64(trial))
		if err != nil {
			t.Fatal(err)
		}
		kills := rng.IntN(hosts)
		for range kills {
			h := rng.IntN(hosts)
			if _, err := a.Fail(h); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(3) == 0 {
				for _, r := range a.FailedRoles() {
					if _, err := a.Replace(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			if u := Unmonitored(a, 1); len(u) != 0 {
				t.Fatalf("trial %d (%d hosts, L%d): live hosts %v unmonitored", trial, hosts, l, u)
			}
		}
	}
	if _, err := (&Assignment{down: make([]bool, 1)}).Fail(3); !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("fail unknown host: %v", err)
	}
}

func TestMasterSlave(t *testing.T) {
	m, err := NewMasterSlave(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Targets(0)) != 9 || m.Targets(1) != nil || !slices.Equal(m.ControllerTargets(), []int{0}) {
		t.Fatal("master-slave layout")
	}
	if err := m.Fail(0); err != nil || m.Master() != 1 {
		t.Fatalf("master after failure %d %v", m.Master(), err)
	}
	if u := Unmonitored(m, 1); len(u) != 0 {
		t.Fatalf("unmonitored %v", u)
	}
	if _, err := NewMasterSlave(0); !errors.Is(err, ErrNoHosts) {
		t.Fatal(err)
	}
}

// TestBalanceClosedForm checks the counts against closed forms for N×N
// hosts: master-slave: the master 2(N²−1)+2, others 2; Level 1: queens
// 2(N−1)+2, others 2; Level 2: queens 4(N−1)+2, others 4.
func TestBalanceClosedForm(t *testing.T) {
	for n := 4; n <= 12; n++ {
		hosts := n * n
		ms, _ := NewMasterSlave(hosts)
		N := float64(hosts)
		nn := float64(n)
		wantMS := (2*(N-1) + 2 - 2) / ((2*(N-1) + 2 + 2*(N-1)) / N)
		if got := Balance(Messages(ms)); math.Abs(got-wantMS) > 1e-9 {
			t.Errorf("N=%d master-slave balance %g, want %g", n, got, wantMS)
		}
		for _, l := range []Level{Level1, Level2} {
			a, _ := Assign(hosts, l, 0)
			lines := float64(l) * (nn - 1)
			q := 2*lines + 2
			o := 2 * float64(l)
			want := (q - o) / ((nn*q + (N-nn)*o) / N)
			if got := Balance(Messages(a)); math.Abs(got-want) > 1e-9 {
				t.Errorf("N=%d L%d balance %g, want %g", n, l, got, want)
			}
		}
	}
	if Balance(nil) != 0 || Balance([]int{0, 0}) != 0 || StdDev(nil) != 0 {
		t.Error("degenerate balance")
	}
	if got := StdDev([]int{2, 4}); got != 1 {
		t.Errorf("StdDev = %g", got)
	}
}

func TestAssignMillionHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("1M-host assignment in -short mode")
	}
	t0 := time.Now()
	a, err := Assign(1_000_000, Level2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second { // goal < 1 s; generous under -race
		t.Fatalf("assigning 1M hosts took %v", d)
	}
	if a.Board.N != 1000 || len(a.Targets(a.Queens()[0])) != 1998 {
		t.Fatalf("board %d, targets %d", a.Board.N, len(a.Targets(a.Queens()[0])))
	}
}

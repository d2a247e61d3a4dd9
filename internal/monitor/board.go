// Package monitor assigns monitoring duties to hosts and runs the
// monitoring: seed 004's n-queen scheme, in which hosts are laid out on an
// n×n board and the hosts on an n-queens solution (the "queens") probe the
// hosts on their lines, and the master–slave baseline.
//
// Assign builds the board (n = round(√hosts), raised when the board would
// have fewer squares than hosts, and at least 4; squares beyond the host
// count hold duplicated pieces, as in the paper) on an O(n) explicit
// n-queens solution. At Level 1 each queen monitors its row, so every host
// is monitored once; at Level 2 its row and column, so twice. Queens
// report to, and are probed by, the controller. When a queen fails, the
// hosts it monitored are taken over as in the paper's Figure 2c (by the
// queen of their other line) and Replace promotes a live host of its row.
//
// Agent, Controller and the wire protocol (Encode, Decode) run it for
// real over UDP.
package monitor

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Level is how many queens monitor each host.
type Level int

// Levels.
const (
	Level1 Level = 1 // rows: every host monitored once
	Level2 Level = 2 // rows and columns: every host monitored twice
)

// Errors.
var (
	ErrNoHosts     = errors.New("no hosts to monitor")
	ErrUnfillable  = errors.New("the board cannot be filled")
	ErrBadLevel    = errors.New("monitoring level must be 1 or 2")
	ErrUnknownHost = errors.New("unknown host")
)

// Board is hosts laid out on an n×n board with an n-queens solution.
type Board struct {
	N     int
	Hosts int
	// Square holds the host on each square, row-major (square r*N+c).
	Square []int32
	// Queen[r] is the column of row r's queen; QueenRow[c] the row of
	// column c's queen.
	Queen, QueenRow []int32
	// dups lists, for hosts on more than one square, their extra squares.
	first []int32
	dups  map[int32][]int32
}

// BoardSize returns the board side used for hosts: round(√hosts), raised
// to ⌈√hosts⌉ when round gives fewer squares than hosts (so that no host
// is left off the board), and to 4 for 2..15 hosts (n-queens has no
// solution for n = 2, 3). One host gives a 1×1 board.
func BoardSize(hosts int) (int, error) {
	switch {
	case hosts <= 0:
		return 0, fmt.Errorf("n-queen board for %d hosts: %w", hosts, ErrNoHosts)
	case hosts == 1:
		return 1, nil
	case hosts < 4:
		return 0, fmt.Errorf("n-queen board for %d hosts: %w: the smallest board with a solution (4×4) needs 4 distinct queens; monitor fewer than 4 hosts with MasterSlave", hosts, ErrUnfillable)
	}
	n := int(math.Round(math.Sqrt(float64(hosts))))
	for n*n < hosts {
		n++
	}
	return max(n, 4), nil
}

// NewBoard lays hosts out: host i on square i, the remaining squares
// filled with duplicated pieces of hosts drawn by a seeded shuffle (each
// host duplicated at most once more than any other), then swaps pieces so
// that the n queens' squares hold n distinct hosts.
func NewBoard(hosts int, seed uint64) (*Board, error) {
	n, err := BoardSize(hosts)
	if err != nil {
		return nil, err
	}
	q, err := Solve(n)
	if err != nil {
		return nil, fmt.Errorf("board for %d hosts: %w", hosts, err)
	}
	b := &Board{N: n, Hosts: hosts, Square: make([]int32, n*n), Queen: make([]int32, n), QueenRow: make([]int32, n)}
	for r, c := range q {
		b.Queen[r], b.QueenRow[c] = int32(c), int32(r)
	}
	for i := range hosts {
		b.Square[i] = int32(i)
	}
	if extra := n*n - hosts; extra > 0 {
		rng := rand.New(rand.NewPCG(seed, 0x51ed27))
		perm := rng.Perm(hosts)
		for i := range extra {
			b.Square[hosts+i] = int32(perm[i%hosts])
		}
		b.distinctQueens()
	}
	b.index()
	return b, nil
}

// distinctQueens swaps duplicated pieces off queen squares until every
// queen square holds a different host.
func (b *Board) distinctQueens() {
	n := b.N
	isQueen := func(s int) bool { return int(b.Queen[s/n]) == s%n }
	onQueen := map[int32]bool{}
	next := 0 // scan position for swap candidates
	for r := range n {
		s := r*n + int(b.Queen[r])
		if !onQueen[b.Square[s]] {
			onQueen[b.Square[s]] = true
			continue
		}
		for ; next < n*n; next++ {
			if !isQueen(next) && !onQueen[b.Square[next]] {
				break
			}
		}
		// hosts >= 4 = n's minimum and queens < hosts, so a candidate exists
		b.Square[s], b.Square[next] = b.Square[next], b.Square[s]
		onQueen[b.Square[s]] = true
		next++
	}
}

// index records each host's squares.
func (b *Board) index() {
	b.first = make([]int32, b.Hosts)
	for i := range b.first {
		b.first[i] = -1
	}
	b.dups = map[int32][]int32{}
	for s, h := range b.Square {
		if b.first[h] < 0 {
			b.first[h] = int32(s)
		} else {
			b.dups[h] = append(b.dups[h], int32(s))
		}
	}
}

// SquaresOf returns the squares host h occupies.
func (b *Board) SquaresOf(h int) []int {
	if h < 0 || h >= b.Hosts {
		return nil
	}
	out := []int{int(b.first[h])}
	for _, s := range b.dups[int32(h)] {
		out = append(out, int(s))
	}
	return out
}

// Line returns the squares of a queen role's lines at level l: row r, and
// at Level 2 also the column of row r's queen (the queen's own square
// once).
func (b *Board) Line(r int, l Level) []int {
	n := b.N
	c := int(b.Queen[r])
	out := make([]int, 0, 2*n)
	for cc := range n {
		out = append(out, r*n+cc)
	}
	if l >= Level2 {
		for rr := range n {
			if rr != r {
				out = append(out, rr*n+c)
			}
		}
	}
	return out
}

// Assignment is who monitors whom: queen roles (one per board row), the
// host acting in each role, and the hosts failed so far. The controller
// probes the acting queens. Assignment is not safe for concurrent use.
type Assignment struct {
	Board *Board
	Level Level
	// roleHost[r] is the host acting as row r's queen (-1: failed, not
	// replaced).
	roleHost []int32
	hostRole map[int32]int32
	down     []bool
	// extra squares taken over per role (Figure 2c), and by the controller
	// when no live queen can take them.
	extra      [][]int32
	ctrlExtra  []int32
	replaced   int
	takenOver  int
	roleFailed []bool
}

// Assign lays out hosts and assigns queens at level l.
func Assign(hosts int, l Level, seed uint64) (*Assignment, error) {
	if l != Level1 && l != Level2 {
		return nil, fmt.Errorf("assign %d hosts at level %d: %w", hosts, l, ErrBadLevel)
	}
	b, err := NewBoard(hosts, seed)
	if err != nil {
		return nil, err
	}
	a := &Assignment{Board: b, Level: l, roleHost: make([]int32, b.N), hostRole: make(map[int32]int32, b.N),
		down: make([]bool, hosts), extra: make([][]int32, b.N), roleFailed: make([]bool, b.N)}
	for r := range b.N {
		h := b.Square[r*b.N+int(b.Queen[r])]
		a.roleHost[r] = h
		a.hostRole[h] = int32(r)
	}
	return a, nil
}

// Hosts returns the number of hosts.
func (a *Assignment) Hosts() int { return a.Board.Hosts }

// Queens returns the hosts acting as queens, by role (-1 for a failed
// queen not yet replaced).
func (a *Assignment) Queens() []int {
	out := make([]int, len(a.roleHost))
	for r, h := range a.roleHost {
		out[r] = int(h)
	}
	return out
}

// Role returns the queen role host h acts in, if any.
func (a *Assignment) Role(h int) (int, bool) {
	r, ok := a.hostRole[int32(h)]
	return int(r), ok
}

// Down reports whether host h has been marked failed.
func (a *Assignment) Down(h int) bool { return h >= 0 && h < len(a.down) && a.down[h] }

// roleSquares returns the squares role r covers: its lines and what it
// took over.
func (a *Assignment) roleSquares(r int) []int {
	sq := a.Board.Line(r, a.Level)
	for _, s := range a.extra[r] {
		sq = append(sq, int(s))
	}
	return sq
}

// Targets returns the hosts host h probes (sorted, without h), or nil if
// h is no queen. Failed hosts stay targets: their recovery is noticed.
func (a *Assignment) Targets(h int) []int {
	r, ok := a.hostRole[int32(h)]
	if !ok {
		return nil
	}
	return a.hostsOn(a.roleSquares(int(r)), h)
}

func (a *Assignment) hostsOn(squares []int, self int) []int {
	out := make([]int, 0, len(squares))
	for _, s := range squares {
		if h := int(a.Board.Square[s]); h != self {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ControllerTargets returns the hosts the controller probes itself: every
// acting queen, and hosts no live queen could take over.
func (a *Assignment) ControllerTargets() []int {
	var out []int
	for _, h := range a.roleHost {
		if h >= 0 {
			out = append(out, int(h))
		}
	}
	for _, s := range a.ctrlExtra {
		out = append(out, int(a.Board.Square[s]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Change says what a failure or a replacement changed: the monitors whose
// target lists differ now.
type Change struct {
	// Monitors lists hosts whose targets changed (send them new lists).
	Monitors []int `json:"monitors"`
	// Controller: the controller's own targets changed.
	Controller bool `json:"controller"`
	// TakenOver counts squares handed to another monitor.
	TakenOver int `json:"taken_over"`
	// Replacement is the host promoted to queen (-1: none).
	Replacement int `json:"replacement"`
}

// Fail marks host h failed. If h acts as a queen, every square it
// monitored that is left with fewer than one live monitor is taken over by
// the queen of the square's other line (Figure 2c: a row's squares by
// their column's queen), or, if that queen is down too, by the live queen
// with the fewest targets, or by the controller.
func (a *Assignment) Fail(h int) (Change, error) {
	ch := Change{Replacement: -1}
	if h < 0 || h >= len(a.down) {
		return ch, fmt.Errorf("fail host %d of %d: %w", h, len(a.down), ErrUnknownHost)
	}
	if a.down[h] {
		return ch, nil
	}
	a.down[h] = true
	r, ok := a.hostRole[int32(h)]
	if !ok {
		return ch, nil
	}
	a.roleFailed[r] = true
	a.roleHost[r] = -1
	delete(a.hostRole, int32(h))
	ch.Controller = true
	monitors := map[int]bool{}
	for _, s := range a.roleSquares(int(r)) {
		tgt := int(a.Board.Square[s])
		if tgt == h || a.liveMonitorsOfSquare(s) > 0 {
			continue
		}
		to := a.takeoverRole(s)
		ch.TakenOver++
		a.takenOver++
		if to < 0 {
			a.ctrlExtra = append(a.ctrlExtra, int32(s))
			continue
		}
		a.extra[to] = append(a.extra[to], int32(s))
		monitors[int(a.roleHost[to])] = true
	}
	a.extra[r] = nil
	for m := range monitors {
		ch.Monitors = append(ch.Monitors, m)
	}
	slices.Sort(ch.Monitors)
	return ch, nil
}

// liveMonitorsOfSquare counts live queen roles covering square s (by line
// or takeover), the controller included.
func (a *Assignment) liveMonitorsOfSquare(s int) int {
	n := a.Board.N
	row, col := s/n, s%n
	count := 0
	live := func(r int) bool { return a.roleHost[r] >= 0 }
	if live(row) && int(a.Board.Queen[row]) != col {
		count++
	}
	if a.Level >= Level2 {
		if cr := int(a.Board.QueenRow[col]); cr != row && live(cr) {
			count++
		}
	}
	for r, ex := range a.extra {
		if live(r) && slices.Contains(ex, int32(s)) {
			count++
		}
	}
	if slices.Contains(a.ctrlExtra, int32(s)) {
		count++
	}
	return count
}

// takeoverRole picks the live role to take square s over: its column's
// queen (Figure 2c), else the live role with the fewest squares.
func (a *Assignment) takeoverRole(s int) int {
	n := a.Board.N
	row, col := s/n, s%n
	if cr := int(a.Board.QueenRow[col]); cr != row && a.roleHost[cr] >= 0 {
		return cr
	}
	best, bestLoad := -1, 0
	for r, h := range a.roleHost {
		if h < 0 {
			continue
		}
		if l := len(a.extra[r]); best < 0 || l < bestLoad {
			best, bestLoad = r, l
		}
	}
	return best
}

// Replace promotes a live host of a failed queen's row (the first, going
// right from the failed queen's column, that is not a queen already) to act
// as that row's queen with the failed queen's lines; the squares other
// queens took over for it go back. It reports the replacement (-1 when no
// row has a failed queen, or the row has no live candidate; the takeovers
// then stay).
func (a *Assignment) Replace(row int) (Change, error) {
	ch := Change{Replacement: -1}
	if row < 0 || row >= a.Board.N {
		return ch, fmt.Errorf("replace queen of row %d of %d: no such row", row, a.Board.N)
	}
	if a.roleHost[row] >= 0 {
		return ch, nil
	}
	n := a.Board.N
	c0 := int(a.Board.Queen[row])
	cand := -1
	for i := 1; i <= n; i++ {
		h := a.Board.Square[row*n+(c0+i)%n]
		if _, isQueen := a.hostRole[h]; !isQueen && !a.down[h] {
			cand = int(h)
			break
		}
	}
	if cand < 0 {
		return ch, nil
	}
	a.roleHost[row] = int32(cand)
	a.hostRole[int32(cand)] = int32(row)
	a.roleFailed[row] = false
	a.replaced++
	ch.Replacement, ch.Controller = cand, true
	monitors := map[int]bool{cand: true}
	mine := map[int32]bool{}
	for _, s := range a.Board.Line(row, a.Level) {
		mine[int32(s)] = true
	}
	for r := range a.extra {
		kept := a.extra[r][:0]
		for _, s := range a.extra[r] {
			if mine[s] {
				monitors[int(a.roleHost[r])] = true
				continue
			}
			kept = append(kept, s)
		}
		a.extra[r] = kept
	}
	kept := a.ctrlExtra[:0]
	for _, s := range a.ctrlExtra {
		if !mine[s] {
			kept = append(kept, s)
		}
	}
	a.ctrlExtra = kept
	// At Level 2 the failed queen's own square lies on the replacement's
	// row and column only: give it a second monitor.
	if a.Level >= Level2 {
		qs := int32(row*n + c0)
		best, bestLoad := -1, 0
		for r, h := range a.roleHost {
			if r == row || h < 0 {
				continue
			}
			if l := len(a.extra[r]); best < 0 || l < bestLoad {
				best, bestLoad = r, l
			}
		}
		if best >= 0 && !slices.Contains(a.extra[best], qs) {
			a.extra[best] = append(a.extra[best], qs)
			monitors[int(a.roleHost[best])] = true
		}
	}
	for m := range monitors {
		if m >= 0 {
			ch.Monitors = append(ch.Monitors, m)
		}
	}
	slices.Sort(ch.Monitors)
	return ch, nil
}

// FailedRoles lists rows whose queen failed and has not been replaced.
func (a *Assignment) FailedRoles() []int {
	var out []int
	for r, f := range a.roleFailed {
		if f {
			out = append(out, r)
		}
	}
	return out
}

// Recover marks host h up again. It keeps its squares; it does not get
// its queen role back if it was replaced.
func (a *Assignment) Recover(h int) {
	if h >= 0 && h < len(a.down) {
		a.down[h] = false
	}
}

// Coverage counts, for every host, its live monitors: acting queens that
// probe it plus the controller when it probes it.
func Coverage(s Scheme) []int {
	cov := make([]int, s.Hosts())
	for h := range s.Hosts() {
		if s.Down(h) {
			continue
		}
		for _, t := range s.Targets(h) {
			cov[t]++
		}
	}
	for _, t := range s.ControllerTargets() {
		cov[t]++
	}
	return cov
}

// Unmonitored lists live hosts with fewer than want live monitors.
func Unmonitored(s Scheme, want int) []int {
	var out []int
	for h, c := range Coverage(s) {
		if !s.Down(h) && c < want {
			out = append(out, h)
		}
	}
	return out
}

// assignSolution is Assign on a given n-queens solution q and n² hosts
// (tests use it to follow the paper's figures).
func assignSolution(q []int, l Level) (*Assignment, error) {
	if !Valid(q) {
		return nil, fmt.Errorf("%v is not an n-queens solution", q)
	}
	n := len(q)
	b := &Board{N: n, Hosts: n * n, Square: make([]int32, n*n), Queen: make([]int32, n), QueenRow: make([]int32, n)}
	for r, c := range q {
		b.Queen[r], b.QueenRow[c] = int32(c), int32(r)
	}
	for i := range b.Square {
		b.Square[i] = int32(i)
	}
	b.index()
	a := &Assignment{Board: b, Level: l, roleHost: make([]int32, n), hostRole: make(map[int32]int32, n),
		down: make([]bool, n*n), extra: make([][]int32, n), roleFailed: make([]bool, n)}
	for r := range n {
		h := b.Square[r*n+q[r]]
		a.roleHost[r] = h
		a.hostRole[h] = int32(r)
	}
	return a, nil
}

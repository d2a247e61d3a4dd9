package monitor

import (
	"errors"
	"fmt"
)

// ErrNoSolution: the n-queens problem has no solution for n = 2 and 3 (and
// no meaning for n < 1).
var ErrNoSolution = errors.New("the n-queens problem has no solution for this n")

// Solve returns a solution of the n-queens problem in O(n): q[r] is the
// column (0-based) of the queen on row r, and no two queens share a row,
// a column or a diagonal. It uses the explicit construction (Hoffman,
// Loessi and Moore, 1969; Bernhardsson, 1991): even columns first, then odd
// ones, with fix-ups for n mod 6 = 2 or 3. n = 1 gives the single queen.
func Solve(n int) ([]int, error) {
	if n < 1 || n == 2 || n == 3 {
		return nil, fmt.Errorf("n-queens for n = %d: %w", n, ErrNoSolution)
	}
	cols := make([]int, 0, n) // 1-based while building
	var evens, odds []int
	for c := 2; c <= n; c += 2 {
		evens = append(evens, c)
	}
	for c := 1; c <= n; c += 2 {
		odds = append(odds, c)
	}
	switch n % 6 {
	case 2:
		// odds: swap 1 and 3, move 5 to the end
		odds[0], odds[1] = odds[1], odds[0]
		if len(odds) > 2 {
			odds = append(append(odds[:2:2], odds[3:]...), 5)
		}
	case 3:
		// evens: move 2 to the end; odds: move 1 and 3 to the end
		evens = append(evens[1:], 2)
		odds = append(odds[2:], 1, 3)
	}
	cols = append(append(cols, evens...), odds...)
	for i := range cols {
		cols[i]--
	}
	return cols, nil
}

// Valid reports whether q is a solution of the n-queens problem for
// n = len(q): a permutation of 0..n-1 with no two queens on a diagonal.
// It runs in O(n).
func Valid(q []int) bool {
	n := len(q)
	col := make([]bool, n)
	diag := make([]bool, 2*n)
	anti := make([]bool, 2*n)
	for r, c := range q {
		if c < 0 || c >= n || col[c] || diag[r-c+n] || anti[r+c] {
			return false
		}
		col[c], diag[r-c+n], anti[r+c] = true, true, true
	}
	return true
}

// SolveBacktrack is the paper's Algorithm 1 — a depth-first search of the
// state-space tree that places a queen per column from the last to the
// first, trying rows in increasing order and backtracking from
// non-promising nodes — kept as the reference the explicit construction is
// checked against. It is exponential; use it only for small n.
//
// As printed, the paper's checkOtherQueens returns after comparing with the
// first queen in QSet and only tests diagonals (|j−l| = |i−k|), and the row
// counter i is never reset between calls; this implementation tests rows,
// columns and both diagonals against every placed queen, which is what the
// text describes. It returns q as Solve does (q[r] = column of row r's
// queen).
func SolveBacktrack(n int) ([]int, error) {
	if n < 1 || n == 2 || n == 3 {
		return nil, fmt.Errorf("n-queens for n = %d: %w", n, ErrNoSolution)
	}
	rowOf := make([]int, n) // per column: row of its queen
	var queens func(col int) bool
	queens = func(col int) bool {
		if col < 0 {
			return true // every monitoring node is placed
		}
		for i := range n {
			if promising(rowOf, n, i, col) {
				rowOf[col] = i
				if queens(col - 1) {
					return true
				}
			}
		}
		return false // backtrack
	}
	if !queens(n - 1) {
		return nil, fmt.Errorf("n-queens for n = %d: %w", n, ErrNoSolution)
	}
	q := make([]int, n)
	for c, r := range rowOf {
		q[r] = c
	}
	return q, nil
}

// promising reports whether a queen at (row i, column j) attacks none of
// the queens already placed in columns j+1..n-1.
func promising(rowOf []int, n, i, j int) bool {
	for l := j + 1; l < n; l++ {
		k := rowOf[l]
		if k == i || l-j == k-i || l-j == i-k {
			return false
		}
	}
	return true
}

// CountSolutions counts every solution for n (n ≤ 16 or so) with bitmask
// backtracking; tests use it to cross-check the solvers.
func CountSolutions(n int) int {
	if n < 1 {
		return 0
	}
	all := uint64(1)<<n - 1
	var count func(cols, d1, d2 uint64) int
	count = func(cols, d1, d2 uint64) int {
		if cols == all {
			return 1
		}
		total := 0
		for free := all &^ (cols | d1 | d2); free != 0; free &= free - 1 {
			bit := free & -free
			total += count(cols|bit, (d1|bit)<<1&all, (d2|bit)>>1)
		}
		return total
	}
	return count(0, 0, 0)
}

// Solutions enumerates every solution for small n (the reference set the
// explicit construction's answer must belong to).
func Solutions(n int) [][]int {
	var out [][]int
	q := make([]int, n)
	used := make([]bool, n)
	var rec func(r int)
	rec = func(r int) {
		if r == n {
			out = append(out, append([]int(nil), q...))
			return
		}
		for c := range n {
			if used[c] {
				continue
			}
			ok := true
			for pr := range r {
				if pr-q[pr] == r-c || pr+q[pr] == r+c {
					ok = false
					break
				}
			}
			if ok {
				used[c] = true
				q[r] = c
				rec(r + 1)
				used[c] = false
			}
		}
	}
	if n >= 1 {
		rec(0)
	}
	return out
}

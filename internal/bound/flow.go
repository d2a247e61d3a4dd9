package bound

import "math"

// flowNet is a directed network with real capacities for a maximum flow
// (Dinic's algorithm). Networks here have a few hundred nodes at most.
type flowNet struct {
	head  []int // per node: first edge, -1 for none
	next  []int // per edge: next edge of the same node
	to    []int
	cap   []float64 // residual capacity
	level []int
	iter  []int
}

func newFlowNet(nodes int) *flowNet {
	n := &flowNet{head: make([]int, nodes), level: make([]int, nodes), iter: make([]int, nodes)}
	for i := range n.head {
		n.head[i] = -1
	}
	return n
}

// addNode appends a node and returns its index.
func (n *flowNet) addNode() int {
	n.head = append(n.head, -1)
	n.level = append(n.level, 0)
	n.iter = append(n.iter, 0)
	return len(n.head) - 1
}

// addEdge adds an edge a → b of capacity c (+Inf allowed) and its residual
// reverse edge. Edges of capacity 0 or less are left out.
func (n *flowNet) addEdge(a, b int, c float64) {
	if !(c > 0) {
		return
	}
	for _, e := range [2]struct {
		from, to int
		c        float64
	}{{a, b, c}, {b, a, 0}} {
		n.to = append(n.to, e.to)
		n.cap = append(n.cap, e.c)
		n.next = append(n.next, n.head[e.from])
		n.head[e.from] = len(n.to) - 1
	}
}

// maxFlow returns the value of a maximum flow from s to t. It consumes the
// capacities.
func (n *flowNet) maxFlow(s, t int) float64 {
	var total float64
	for n.bfs(s, t) {
		copy(n.iter, n.head)
		for {
			f := n.dfs(s, t, math.Inf(1))
			if !(f > 0) {
				break
			}
			total += f
			if math.IsInf(total, 1) {
				return total
			}
		}
	}
	return total
}

// residualEps is the residual capacity (bytes/s) below which an edge is
// treated as saturated, so that rounding cannot keep the search going.
const residualEps = 1e-6

func (n *flowNet) bfs(s, t int) bool {
	for i := range n.level {
		n.level[i] = -1
	}
	n.level[s] = 0
	queue := []int{s}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for e := n.head[u]; e >= 0; e = n.next[e] {
			if v := n.to[e]; n.cap[e] > residualEps && n.level[v] < 0 {
				n.level[v] = n.level[u] + 1
				queue = append(queue, v)
			}
		}
	}
	return n.level[t] >= 0
}

func (n *flowNet) dfs(u, t int, pushed float64) float64 {
	if u == t {
		return pushed
	}
	for ; n.iter[u] >= 0; n.iter[u] = n.next[n.iter[u]] {
		e := n.iter[u]
		v := n.to[e]
		if n.cap[e] <= residualEps || n.level[v] != n.level[u]+1 {
			continue
		}
		if f := n.dfs(v, t, math.Min(pushed, n.cap[e])); f > 0 {
			n.cap[e] -= f
			n.cap[e^1] += f
			return f
		}
	}
	return 0
}

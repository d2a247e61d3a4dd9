// Package bound computes schedule-independent bounds on an evacuation: the
// most VMs (and the largest total priority) any schedule can save before
// the deadlines (SavedUpperBound), and the least time any schedule needs to
// move every at-risk VM when deadlines are far away (MakespanLowerBound).
// They are pure functions of the federation (model.Index), the placement,
// the hosts that are down, link bandwidth overrides, the deadlines of the
// threatened sites and the time now — never of a plan, a route choice or a
// run — so a bad schedule shows as a bad ratio to them. `refuge bench
// saved` reports every policy against them.
//
// # Model
//
// The bounds hold for the migration model the planner, the executor and
// the simulator share: a migration crosses its source host's NIC, the WAN
// link directions of some route, and its destination host's NIC; every
// resource r carries at most its capacity C_r (netpath.Capacity, TCP
// goodput after framing, tunnel overhead and background traffic) at any
// moment, however flows share it; a migration spends precopy.Setup(RTT)
// before any byte flows, sends its local disk (if any) and at least all of
// its memory, and ends with a switch-over of at least
// precopy.SwitchoverOverhead after its last byte; one migration's rate is
// at most netpath.FlowCap(0, RTT, 1) (one TCP connection's window over the
// RTT; the parameters are model.RefugePolicy's: no bandwidth cap, 300 ms
// downtime limit, auto-converge). Safety margins are 0: a VM counts as
// saved if its migration ends by its site's deadline. Nothing is in flight
// at Now.
//
// Destinations are the up hosts of safe sites (sites without a deadline);
// a destination has room for a VM when its memory minus that of the VMs
// placed on it is at least the VM's. Routes may transit any site, a
// threatened one only until its deadline: a site lost to a disaster takes
// its hosts and its WAN links with it (simhv's LoseSite cuts them too).
//
// # One VM's best case
//
// For each at-risk VM i on an up host, and each safe site t with a host
// that has room for it and a route with bandwidth from its site s:
//
//	rate_i(t) = min(C_nic-out(src), max C_nic-in over t's hosts with room,
//	                widest_route(s→t), FlowCap(0, LANRTT + least_RTT(s→t), 1))
//
// where widest_route is the largest bottleneck capacity of any route and
// least_RTT the least RTT of any route with bandwidth. Any real path's rate
// is at most each of these terms (they may come from different routes,
// which only loosens the bound). Then
//
//	bytes_i = disk_i + memory_i
//	time_i  = min over t of min( Setup(rtt_t) + bytes_i/rate_i(t) + SwitchoverOverhead,   (pause-and-copy)
//	                             precopy.Solo at rate_i(t) and rtt_t )                     (live pre-copy)
//
// Every way to move i sends at least bytes_i (pre-copy's first round alone
// sends all memory, after the disk), and none can be faster than its set-up
// plus bytes_i at the best rate plus the switch-over; so pause-and-copy is
// in fact never beaten by pre-copy in this model, and time_i is the least
// time of any migration of i, whatever else runs. A VM with no such t (or
// whose host is down) cannot be moved by any schedule ("immovable").
//
// # Saved upper bound
//
// For a threatened site s with window T_s = deadline_s − Now, the
// candidates are its movable VMs with time_i ≤ T_s: no schedule saves any
// other VM of s. Let setup_s be the least set-up time of the candidates;
// no byte of s's moves flows before Now + setup_s. If a schedule saves a set
// S of s's VMs, all their bytes (at least Σ bytes_i) cross, within
// T_s − setup_s:
//
//   - their source hosts' NICs: for each host h, the VMs saved from h fit in
//     C_nic-out(h) × (T_s − setup_s) ("nic-out");
//   - the NICs of the destination hosts, which must have room for the
//     smallest candidate: Σ C_nic-in × (T_s − setup_s) ("nic-in");
//   - every cut between the source hosts and those destinations in the
//     network of NICs and link directions (transit through any site not
//     yet lost): the traffic at each moment τ is a feasible flow, so its
//     rate is at most the maximum flow F_s(τ) of the network left at τ, and
//     Σ bytes ≤ ∫ F_s(τ) dτ over the window after setup_s — a sum over the
//     intervals between the threatened sites' deadlines ("flow");
//
// and their memory fits in the destinations' free memory ("memory"). For
// each budget, the largest number of items whose sizes fit it is reached
// by taking the smallest first; the site's bound is the least of these
// counts (and of the number of candidates, "vms").
//
// Sites share destinations, their NICs and memory, and links. Sort the
// threatened sites by deadline; for each deadline d_k (from the second
// on), the VMs saved from the sites lost by d_k all finish by d_k, so the
// same tests on the union of their candidates with window d_k − Now bound
// how many of them are saved, and the bound is that plus the per-site
// bounds of the later sites. The result is the least of the sum of the
// per-site bounds and of every such union bound; the last union is all
// threatened sites with the latest deadline.
//
// The priority bound uses the same constraints. For one budget, the
// largest total priority of items that fit is at most the optimum of the
// knapsack's linear relaxation: items by priority per byte (or per byte of
// memory), the last one in part (fractional knapsack, which solves the
// relaxation exactly). Dropping all constraints but one can only raise the
// optimum, so each such value is an upper bound, and so is their least;
// so is the sum of the largest priorities of as many VMs as the count
// bound allows ("count"). Sites and unions combine as for the count. The
// reported figure is rounded down (priorities are integers).
//
// # Makespan lower bound
//
// When every movable at-risk VM must move (deadlines far away), any
// schedule lasts at least the largest of:
//
//   - time_i for every VM ("vm:<name>"): a migration is no faster alone;
//   - setup_h + bytes_h / C_nic-out(h) for every source host h ("nic-out:")
//     — its bytes leave through its NIC, and none before the first set-up
//     ends;
//   - setup_s + bytes_s / F_s for every threatened site s ("flow:<site>"),
//     F_s the maximum flow as above, into the safe hosts with room for the
//     site's smallest VM;
//   - setup + bytes / F for all threatened sites together ("flow:all
//     threatened sites"), since their moves share destinations and links;
//   - setup + bytes / Σ C_nic-in of the safe hosts with room for the
//     smallest VM ("nic-in:safe hosts").
//
// The switch-over after the last byte is not added to the aggregate terms
// (a post-copy would overlap it with the transfer); it is in time_i. The
// receiving NICs are a cut of the flow network, so "flow:all threatened
// sites" is never below "nic-in:safe hosts"; the NIC term is kept because
// it names the simpler cause when the two are equal (ties go to the term
// listed first). MakespanLowerBoundOf
// takes the VMs a run actually moved, for a bound on that run when it did
// not move them all.
//
// # What the bounds leave out
//
// They are optimistic, never pessimistic: memory is pooled (no bin
// packing), vCPU, disk room and anti-affinity are ignored, routes are
// free (a real schedule uses the executor's routes), a VM's rate ignores
// everything else that runs, and the per-site windows ignore that each
// move needs its own set-up. Gaps to a schedule therefore mix the
// schedule's loss and the bound's looseness.
package bound

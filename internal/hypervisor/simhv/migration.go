package simhv

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
	"github.com/refuge-project/refuge/internal/sim"
)

// migration is one running (or ended) migration; it implements
// hypervisor.Job.
//
// Its life: setup (precopy.Setup for the path's RTT, no data), then the
// disk copy if the domain has local disks, then memory. Live: pre-copy
// rounds driven by precopy.State, each a flow of State.Remaining bytes,
// then the guest pauses for the final flow. Non-live: the guest pauses
// when setup ends and memory is sent once. Either way the switch-over
// costs precopy.SwitchoverOverhead after the last byte, and only then does
// the domain run at the destination.
//
// Mode switches: Pause makes a live migration pause-and-copy (the guest
// pauses now; the current round's flow is replaced by one of
// precopy.State.Unsent bytes, then the switch-over). StartPostCopy makes it
// post-copy: the guest pauses for precopy.SwitchoverOverhead and then runs
// at the destination while a flow of the unsent bytes pulls the rest; the
// migration completes when both are over. Until then the domain needs the
// source, the destination and the path: losing any of them loses it.
type migration struct {
	c        *Cluster
	vm       int
	src, dst int
	req      hypervisor.MigrateRequest
	obs      hypervisor.Observer
	path     netpath.Path
	res      []sim.ResourceID
	guest    precopy.Guest
	st       *precopy.State // live memory phase; nil before it and for non-live
	cap      float64        // per-flow cap, bytes/s

	started   time.Duration // virtual offset
	startTime time.Time
	phase     hypervisor.Phase
	paused    bool
	pausedAt  time.Duration
	// stopIter: Pause was called; no more pre-copy rounds.
	stopIter bool
	// postCopy: switched to post-copy at postCopyAt; postCopyWanted: asked
	// for before the memory phase, which then starts in post-copy.
	postCopy       bool
	postCopyWanted bool
	postCopyAt     time.Duration

	flow       sim.Flow // the current transfer, if any
	flowBytes  float64
	flowStart  time.Duration
	flowDoneFn func()
	timer      sim.Timer // setup, or the switch-over overhead
	stall      sim.Timer

	diskSent, memSent float64 // bytes of finished (or cancelled) flows
	downtime          time.Duration

	ended bool
	// switched: switchedOver has run.
	switched bool
	final    hypervisor.JobInfo
}

var _ hypervisor.Job = (*migration)(nil)

func (m *migration) live() bool { return m.req.Params.Live }

func (m *migration) afterSetup() {
	if !m.live() {
		m.pause()
	}
	if m.guest.DiskBytes > 0 {
		m.phase = hypervisor.PhaseDisk
		m.send(m.guest.DiskBytes)
		return
	}
	m.startMemory()
}

func (m *migration) pause() {
	m.paused = true
	m.pausedAt = m.c.eng.Elapsed()
}

func (m *migration) startMemory() {
	if m.postCopyWanted {
		m.enterPostCopy(m.guest.MemoryBytes)
		return
	}
	if !m.live() || m.stopIter {
		m.phase = hypervisor.PhaseSwitchover
		m.send(m.guest.MemoryBytes)
		return
	}
	m.st = precopy.NewState(m.guest, precopy.Config{
		MaxDowntime:  m.req.Params.MaxDowntime,
		AutoConverge: m.req.Params.AutoConverge,
	})
	m.phase = hypervisor.PhasePrecopy
	m.send(m.st.Remaining)
}

// send starts the next transfer.
func (m *migration) send(bytes float64) {
	f, err := m.c.net.StartFlow(m.res, bytes, m.cap, m.flowDoneFn)
	if err != nil {
		// Only invalid inputs fail, which Migrate has ruled out.
		m.end(fmt.Errorf("start transfer: %w", err), m.src)
		return
	}
	m.flow, m.flowBytes, m.flowStart = f, bytes, m.c.eng.Elapsed()
}

// flowDone is called by the network when the current transfer completes.
func (m *migration) flowDone() {
	now := m.c.eng.Elapsed()
	m.flow = sim.Flow{}
	switch m.phase {
	case hypervisor.PhaseDisk:
		m.diskSent += m.flowBytes
		m.startMemory()
	case hypervisor.PhasePrecopy:
		m.memSent += m.flowBytes
		m.st.RoundDone(now - m.flowStart)
		switch {
		case m.st.Failed:
			m.end(fmt.Errorf("%d rounds at %.0f%% throttle: %w", m.st.Round, 100*m.st.Throttle, hypervisor.ErrNotConverging), m.src)
		case m.st.Switchover:
			m.phase = hypervisor.PhaseSwitchover
			m.pause()
			m.send(m.st.Remaining)
		default:
			m.send(m.st.Remaining)
		}
	case hypervisor.PhaseSwitchover:
		m.memSent += m.flowBytes
		m.downtime = now - m.pausedAt + precopy.SwitchoverOverhead
		m.timer = m.c.eng.Schedule(now+precopy.SwitchoverOverhead, m.complete)
	case hypervisor.PhasePostcopy:
		m.memSent += m.flowBytes
		m.timer = m.c.eng.Schedule(max(now, m.postCopyAt+precopy.SwitchoverOverhead), m.complete)
	}
}

// stopRound ends pre-copy in the middle of a round: the current flow is
// cancelled, and the phase becomes next. It returns what is still unsent.
func (m *migration) stopRound(next hypervisor.Phase) float64 {
	left := m.flow.Remaining()
	if sent, ok := m.flow.Cancel(); ok {
		m.memSent += sent
	}
	m.flow = sim.Flow{}
	unsent := m.st.Unsent(left, m.c.eng.Elapsed()-m.flowStart)
	m.phase = next
	return unsent
}

// enterPostCopy switches to post-copy with bytes still to pull: the
// guest pauses on the source now and runs at the destination after the
// switch-over overhead.
func (m *migration) enterPostCopy(bytes float64) {
	m.pause()
	m.postCopy = true
	m.postCopyAt = m.pausedAt
	m.downtime = precopy.SwitchoverOverhead
	m.phase = hypervisor.PhasePostcopy
	m.send(bytes)
	m.c.eng.Schedule(m.postCopyAt+precopy.SwitchoverOverhead, m.switchedOver)
}

// switchedOver tells a hypervisor.SwitchoverObserver, once, that the
// domain runs at the destination: when the switch-over pause ends, as
// libvirt's destination reports RESUMED_MIGRATED (or, in post-copy,
// RESUMED_POSTCOPY) before the source's copy is torn down. The call is an
// event of its own, like MigrationDone, and comes before it.
func (m *migration) switchedOver() {
	if m.switched || m.ended {
		return
	}
	m.switched = true
	if so, ok := m.obs.(hypervisor.SwitchoverObserver); ok {
		m.c.eng.Schedule(m.c.eng.Elapsed(), so.SwitchedOver)
	}
}

// lose ends a post-copy migration that failed: the guest's memory is split
// between the hosts, so it runs nowhere.
func (m *migration) lose(why error) {
	c := m.c
	if c.placement[m.vm] == m.src {
		c.placement[m.vm] = -1
		c.placedMiB[m.src] -= c.ix.Fed.VMs[m.vm].MemoryMiB
	}
	m.end(fmt.Errorf("%w during post-copy: %w", why, hypervisor.ErrDomainLost), -1)
}

// complete ends a successful migration.
func (m *migration) complete() {
	c := m.c
	vmMiB := c.ix.Fed.VMs[m.vm].MemoryMiB
	c.placedMiB[m.src] -= vmMiB
	c.placedMiB[m.dst] += vmMiB
	c.placement[m.vm] = m.dst
	m.phase = hypervisor.PhaseDone
	m.switchedOver()
	m.end(nil, m.dst)
}

// checkStall starts the stall timer when the path has a cut link and stops
// it when the path carries again.
func (m *migration) checkStall() {
	cut := false
	for _, l := range m.path.Links {
		cut = cut || m.c.linkCut(l)
	}
	switch {
	case cut && !m.stall.Pending():
		m.stall = m.c.eng.Schedule(m.c.eng.Elapsed()+m.c.stallTimeout(), m.stalled)
	case !cut:
		m.stall.Stop()
	}
}

func (m *migration) stalled() {
	if m.postCopy {
		m.lose(fmt.Errorf("path cut for %v", m.c.stallTimeout()))
		return
	}
	m.end(fmt.Errorf("no progress for %v: %w", m.c.stallTimeout(), hypervisor.ErrLinkDown), m.src)
}

// end finishes the migration with err (nil on success), the domain now
// running on host runningOn (-1: lost), and schedules the observer's call.
// The caller has updated the placement.
func (m *migration) end(err error, runningOn int) {
	if m.ended {
		return
	}
	c := m.c
	if sent, ok := m.flow.Cancel(); ok {
		if m.phase == hypervisor.PhaseDisk {
			m.diskSent += sent
		} else {
			m.memSent += sent
		}
	}
	m.flow = sim.Flow{}
	m.timer.Stop()
	m.stall.Stop()
	info := m.snapshot()
	m.ended = true
	c.migs[m.vm] = nil
	c.running--
	c.reserved[m.dst] -= c.ix.Fed.VMs[m.vm].MemoryMiB

	r := hypervisor.Result{
		Domain:   m.req.Domain,
		Source:   m.req.SourceHost,
		Dest:     m.req.DestHost,
		Started:  m.startTime,
		Finished: c.eng.Now(),
		Bytes:    uint64(math.Round(m.diskSent + m.memSent)),
	}
	if m.st != nil {
		r.Rounds = m.st.Round
	}
	if runningOn >= 0 {
		r.RunningOn = c.ix.Host(runningOn).Name
	}
	switch {
	case err == nil:
		r.Downtime = m.downtime
		info.Type = hypervisor.JobCompleted
		info.Downtime = m.downtime
	case errors.Is(err, hypervisor.ErrAborted):
		info.Type = hypervisor.JobCancelled
	default:
		info.Type = hypervisor.JobFailed
	}
	if err != nil {
		r.Err = fmt.Errorf("simhv: migrate %s from %s to %s: %w", m.req.Domain, m.req.SourceHost, m.req.DestHost, err)
	}
	m.paused = false
	m.final = info
	obs := m.obs
	m.obs = nil
	c.eng.Schedule(c.eng.Elapsed(), func() { obs.MigrationDone(r) })
}

// snapshot returns the job statistics now.
func (m *migration) snapshot() hypervisor.JobInfo {
	inFlight := m.flow.Transferred()
	info := hypervisor.JobInfo{
		Type:      hypervisor.JobUnbounded,
		Phase:     m.phase,
		Elapsed:   m.c.eng.Elapsed() - m.started,
		MemTotal:  uint64(m.guest.MemoryBytes),
		DiskTotal: uint64(m.guest.DiskBytes),
	}
	disk, mem := m.diskSent, m.memSent
	var memRem, diskRem float64
	switch m.phase {
	case hypervisor.PhaseSetup:
		memRem, diskRem = m.guest.MemoryBytes, m.guest.DiskBytes
	case hypervisor.PhaseDisk:
		disk += inFlight
		memRem, diskRem = m.guest.MemoryBytes, m.guest.DiskBytes-disk
	default:
		mem += inFlight
		memRem = m.flow.Remaining()
	}
	info.DiskProcessed = uint64(math.Round(disk))
	info.DiskRemaining = uint64(math.Round(max(0, diskRem)))
	info.MemProcessed = uint64(math.Round(mem))
	info.MemRemaining = uint64(math.Round(memRem))
	info.DataTotal = info.MemTotal + info.DiskTotal
	info.DataProcessed = info.MemProcessed + info.DiskProcessed
	info.DataRemaining = info.MemRemaining + info.DiskRemaining
	rate := m.flow.Rate()
	switch m.phase {
	case hypervisor.PhasePrecopy, hypervisor.PhaseSwitchover, hypervisor.PhasePostcopy:
		info.MemBytesPerSec = rate
		info.MemIteration = 1
	case hypervisor.PhaseDisk:
		info.DiskBytesPerSec = rate
	}
	if m.phase == hypervisor.PhasePrecopy {
		info.MemRoundElapsed = m.c.eng.Elapsed() - m.flowStart
	}
	info.Paused = m.stopIter || (!m.live() && m.paused)
	info.PostCopy = m.postCopy
	if m.st != nil {
		info.MemDirtyRate = m.st.EffectiveDirtyRate()
		info.MemIteration = m.st.Round + 1
		info.AutoConvergeThrottle = int(math.Round(100 * m.st.Throttle))
	}
	// Expected downtime, as QEMU estimates it: what is left to send over
	// the current rate, plus the fixed switch-over cost and the pause so
	// far. In post-copy the guest runs while the rest arrives.
	if m.postCopy {
		info.Downtime = m.downtime
		return info
	}
	if rate > 0 && memRem > 0 {
		info.Downtime = time.Duration(memRem / rate * float64(time.Second))
	}
	info.Downtime += precopy.SwitchoverOverhead
	if m.paused {
		info.Downtime += m.c.eng.Elapsed() - m.pausedAt
	}
	return info
}

// Info returns the job's statistics; once the job has ended, the final
// ones (Type completed, failed or cancelled).
func (m *migration) Info() (hypervisor.JobInfo, error) {
	if m.ended {
		return m.final, nil
	}
	return m.snapshot(), nil
}

// SetMaxSpeed caps the migration at bytesPerSec (0: no cap beyond the TCP
// window), from now on.
func (m *migration) SetMaxSpeed(bytesPerSec float64) error {
	if m.ended {
		return fmt.Errorf("simhv: set max speed of %s: %w", m.req.Domain, ErrJobNotActive)
	}
	if !(bytesPerSec >= 0) || math.IsInf(bytesPerSec, 1) {
		return fmt.Errorf("simhv: set max speed of %s to %v bytes/s: %w", m.req.Domain, bytesPerSec, ErrBadArgument)
	}
	m.req.Params.BandwidthBytes = bytesPerSec
	m.cap = netpath.FlowCap(bytesPerSec, m.path.RTT, m.req.Params.ParallelConnections)
	if m.flow.Active() {
		if err := m.flow.SetCap(m.cap); err != nil {
			return fmt.Errorf("simhv: set max speed of %s: %w", m.req.Domain, err)
		}
	}
	return nil
}

// Abort cancels the migration; the domain keeps running on the source and
// the observer gets hypervisor.ErrAborted. A migration in post-copy
// cannot be aborted (hypervisor.ErrNotAllowed): the guest already runs at
// the destination.
func (m *migration) Abort() error {
	if m.ended {
		return fmt.Errorf("simhv: abort migration of %s: %w", m.req.Domain, ErrJobNotActive)
	}
	if m.postCopy {
		return fmt.Errorf("simhv: abort migration of %s: it is in post-copy: %w", m.req.Domain, hypervisor.ErrNotAllowed)
	}
	m.end(hypervisor.ErrAborted, m.src)
	return nil
}

// Pause switches a live migration to pause-and-copy: the guest pauses now
// and dirties nothing more; in the memory rounds, what is unsent (the rest
// of the round and what the guest dirtied since it began) is copied, then
// the switch-over; before them, the disk copy (if any) continues and
// memory is copied once. Downtime counts from now. Pausing a non-live or
// already paused migration does nothing; in post-copy (or with post-copy
// requested) it is hypervisor.ErrNotAllowed.
func (m *migration) Pause() error {
	switch {
	case m.ended:
		return fmt.Errorf("simhv: pause migration of %s: %w", m.req.Domain, ErrJobNotActive)
	case m.postCopy || m.postCopyWanted:
		return fmt.Errorf("simhv: pause migration of %s: it is in post-copy: %w", m.req.Domain, hypervisor.ErrNotAllowed)
	case !m.live() || m.stopIter:
		return nil
	}
	m.stopIter = true
	switch m.phase {
	case hypervisor.PhaseSetup, hypervisor.PhaseDisk:
		m.pause()
	case hypervisor.PhasePrecopy:
		m.pause()
		m.send(m.stopRound(hypervisor.PhaseSwitchover))
	}
	// In the switch-over the guest is already paused for the final copy.
	return nil
}

// StartPostCopy switches a live migration started with Params.PostCopy to
// post-copy: in the memory rounds at once, before them as soon as memory
// is sent. It is hypervisor.ErrNotAllowed without Params.PostCopy, for a
// non-live or paused migration and during the switch-over; a second call
// does nothing.
func (m *migration) StartPostCopy() error {
	fail := func(why string) error {
		return fmt.Errorf("simhv: post-copy of %s: %s: %w", m.req.Domain, why, hypervisor.ErrNotAllowed)
	}
	switch {
	case m.ended:
		return fmt.Errorf("simhv: post-copy of %s: %w", m.req.Domain, ErrJobNotActive)
	case !m.req.Params.PostCopy || !m.live():
		return fail("the migration was not started live with Params.PostCopy")
	case m.postCopy || m.postCopyWanted:
		return nil
	case m.stopIter:
		return fail("it is paused, copying what is left")
	}
	switch m.phase {
	case hypervisor.PhaseSetup, hypervisor.PhaseDisk:
		m.postCopyWanted = true
	case hypervisor.PhasePrecopy:
		m.enterPostCopy(m.stopRound(hypervisor.PhasePostcopy))
	default:
		return fail("it is already switching over")
	}
	return nil
}

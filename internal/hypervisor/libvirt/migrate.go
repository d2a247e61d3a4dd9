package libvirt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/refuge-project/refuge/internal/hypervisor"
)

// bandwidthMax is libvirt's "unlimited" migration bandwidth in MiB/s
// (QEMU_DOMAIN_MIG_BANDWIDTH_MAX: INT64_MAX bytes/s).
const bandwidthMax = math.MaxInt64 >> 20

// job is one migration; it implements hypervisor.Job.
type job struct {
	d       *Driver
	req     hypervisor.MigrateRequest
	obs     hypervisor.Observer
	dom     lv.Domain
	memory  uint64
	started time.Time
	ready   chan struct{} // closed when Migrate has returned

	mu         sync.Mutex
	info       hypervisor.JobInfo
	ended      bool
	final      hypervisor.JobInfo
	stopReason error // why the driver or the caller cancelled the job
	live       bool
	postcopy   bool
	paused     bool    // Pause suspended the guest: pause-and-copy
	bandwidth  float64 // current cap, bytes/s (SetMaxSpeed)
	lastProg   uint64
	lastProgAt time.Time
	roundIter  int       // the memory iteration the poller saw last
	roundStart time.Time // when it first saw it

	// switched guards the observer's SwitchedOver (switchedOver), which
	// closes switchedCh; watching: watchSwitchover has subscribed.
	switched   sync.Once
	switchedCh chan struct{}
	watching   bool
}

var _ hypervisor.Job = (*job)(nil)

// Migrate checks the request against both hosts and starts a peer-to-peer
// migration; it returns once libvirt has the domain and both hosts answer,
// and never waits for data to move. It refuses (without calling obs): an
// unknown host or one whose connection is down (ErrHostUnreachable), a
// domain not running on SourceHost (ErrNoSuchDomain), a domain that
// already has a migration through this driver (ErrJobAlreadyActive), a
// destination whose memory limit it would exceed (ErrDestinationFull) and
// source = destination (ErrSameHost).
func (d *Driver) Migrate(ctx context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	fail := func(err error) (hypervisor.Job, error) {
		return nil, fmt.Errorf("libvirt: migrate %s from %s to %s: %w", req.Domain, req.SourceHost, req.DestHost, mapErr(err))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if obs == nil {
		return fail(errors.New("an observer is required"))
	}
	if req.SourceHost == req.DestHost {
		return fail(ErrSameHost)
	}
	if _, err := d.conn(req.SourceHost); err != nil {
		return fail(err)
	}
	if _, err := d.conn(req.DestHost); err != nil {
		return fail(err)
	}
	if req.Params.BandwidthBytes < 0 || math.IsNaN(req.Params.BandwidthBytes) || req.Params.MaxDowntime < 0 {
		return fail(errors.New("negative bandwidth or downtime"))
	}
	d.mu.Lock()
	_, busy := d.active[req.Domain]
	d.mu.Unlock()
	if busy {
		return fail(hypervisor.ErrJobAlreadyActive)
	}
	j := &job{d: d, req: req, obs: obs, started: time.Now(), ready: make(chan struct{}), live: req.Params.Live && !d.cfg.NonLive,
		bandwidth: req.Params.BandwidthBytes}
	err := d.call(req.SourceHost, func(c rpc) error {
		dom, err := c.DomainLookupByName(req.Domain)
		if err != nil {
			return err
		}
		st, _, err := c.DomainGetState(dom, 0)
		if err != nil {
			return err
		}
		if s := domState(st); !isActive(s) {
			return fmt.Errorf("domain is %s on %s: %w", s, req.SourceHost, hypervisor.ErrNoSuchDomain)
		}
		if typ, _, err := c.DomainGetJobStats(dom, 0); err == nil && lv.DomainJobType(typ) != lv.DomainJobNone {
			return fmt.Errorf("libvirt reports a job on it: %w", hypervisor.ErrJobAlreadyActive)
		}
		_, maxMem, _, _, _, err := c.DomainGetInfo(dom)
		if err != nil {
			return err
		}
		j.dom, j.memory = dom, maxMem*1024
		return nil
	})
	if err != nil {
		return fail(err)
	}
	// The destination must answer, must not run the domain already, and
	// must have room.
	var used uint64
	err = d.call(req.DestHost, func(c rpc) error {
		doms, _, err := c.ConnectListAllDomains(1, lv.ConnectListDomainsActive)
		if err != nil {
			return err
		}
		for _, dom := range doms {
			if dom.Name == req.Domain {
				return fmt.Errorf("already active on %s: %w", req.DestHost, hypervisor.ErrJobAlreadyActive)
			}
			if _, maxMem, _, _, _, err := c.DomainGetInfo(dom); err == nil {
				used += maxMem * 1024
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if capB := d.memCap[req.DestHost]; capB > 0 && used+d.incoming[req.DestHost]+j.memory > capB {
		return fail(fmt.Errorf("needs %d MiB, %d of %d MiB in use or incoming: %w", j.memory>>20,
			(used+d.incoming[req.DestHost])>>20, capB>>20, hypervisor.ErrDestinationFull))
	}
	if _, busy := d.active[req.Domain]; busy {
		return fail(hypervisor.ErrJobAlreadyActive)
	}
	d.active[req.Domain] = j
	d.incoming[req.DestHost] += j.memory
	j.info = hypervisor.JobInfo{Type: hypervisor.JobUnbounded, Phase: hypervisor.PhaseSetup}
	d.jobs.Go(j.run)
	close(j.ready)
	return j, nil
}

// flags builds virDomainMigrateFlags.
func (j *job) flags(live bool) lv.DomainMigrateFlags {
	p := j.req.Params
	f := lv.MigratePeer2peer | lv.MigrateAbortOnError // the driver always migrates peer to peer
	if live {
		f |= lv.MigrateLive
	}
	if p.PersistDest {
		f |= lv.MigratePersistDest
	}
	if p.UndefineSource {
		f |= lv.MigrateUndefineSource
	}
	switch p.CopyStorage {
	case hypervisor.CopyStorageAll:
		f |= lv.MigrateNonSharedDisk
	case hypervisor.CopyStorageInc:
		f |= lv.MigrateNonSharedInc
	}
	if p.AutoConverge && live {
		f |= lv.MigrateAutoConverge
	}
	if p.ParallelConnections > 1 {
		f |= lv.MigrateParallel
	}
	if p.PostCopy && live {
		f |= lv.MigratePostcopy
	}
	return f
}

func (j *job) typedParams() []lv.TypedParam {
	p := j.req.Params
	j.mu.Lock()
	bw := j.bandwidth
	j.mu.Unlock()
	var tp []lv.TypedParam
	if bw > 0 {
		tp = append(tp, lv.TypedParam{Field: lv.MigrateParamBandwidth, Value: *lv.NewTypedParamValueUllong(mibps(bw))})
	}
	if p.ParallelConnections > 1 {
		tp = append(tp, lv.TypedParam{Field: lv.MigrateParamParallelConnections, Value: *lv.NewTypedParamValueInt(int32(p.ParallelConnections))})
	}
	return tp
}

// mibps converts bytes/s to libvirt's MiB/s, rounding up (0: unlimited).
func mibps(b float64) uint64 {
	if b <= 0 {
		return bandwidthMax
	}
	return uint64(math.Ceil(b / (1 << 20)))
}

// run drives the migration to its end and reports it.
func (j *job) run() {
	<-j.ready
	d := j.d
	req := j.req
	detail := fmt.Sprintf("to %s (%s), live=%v copy-storage=%q", req.DestHost, d.peers[req.DestHost], j.live, req.Params.CopyStorage)
	if len(req.Route) > 0 {
		// The route stays in j.req; nothing here can steer the data.
		detail += fmt.Sprintf(" route=%s (not steered)", strings.Join(req.Route, ","))
		d.cfg.Logger.Debug("migration route not steered: steering by migration URI is not configured: the network's own routing applies",
			"domain", req.Domain, "route", req.Route)
	}
	d.record(Step{Domain: req.Domain, Kind: "migrate", Host: req.SourceHost, Detail: detail})
	if req.Params.MaxDowntime > 0 {
		if err := d.call(req.SourceHost, func(c rpc) error {
			return c.DomainMigrateSetMaxDowntime(j.dom, uint64(req.Params.MaxDowntime.Milliseconds()), 0)
		}); err != nil {
			d.cfg.Logger.Warn("set max downtime", "domain", req.Domain, "err", err)
		}
	}
	watch, stopWatch := context.WithCancel(d.ctx)
	defer stopWatch()
	j.watchSwitchover(watch)
	perr := j.perform(j.live)
	if perr != nil && errors.Is(j.reason(), hypervisor.ErrNotConverging) && d.cfg.ColdFallback && j.live {
		d.record(Step{Domain: req.Domain, Kind: "fallback", Host: req.SourceHost, Detail: "live migration did not converge; migrating non-live", Err: perr.Error()})
		j.mu.Lock()
		j.stopReason, j.live = nil, false
		j.mu.Unlock()
		if where, _ := j.verify(false); where == req.SourceHost {
			perr = j.perform(false)
		}
	}
	finished := time.Now()
	j.finish(perr, finished)
}

func (j *job) reason() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stopReason
}

// perform runs virDomainMigratePerform3Params on a connection of its own
// while a poller reads job statistics on the control connection.
func (j *job) perform(live bool) error {
	d := j.d
	c, err := d.conn(j.req.SourceHost)
	if err != nil {
		return err
	}
	cl, kill, err := d.dial(c.uri)
	if err != nil {
		return fmt.Errorf("connect to %s for the migration: %v: %w", j.req.SourceHost, err, hypervisor.ErrHostUnreachable)
	}
	defer kill()
	ctx, cancel := context.WithCancel(d.ctx)
	var pw sync.WaitGroup
	pw.Go(func() { j.poll(ctx) })
	if v3, ok := cl.(phases); ok && j.driven() {
		err = j.drive(v3, live)
	} else {
		_, err = cl.DomainMigratePerform3Params(j.dom, lv.OptString{d.peers[j.req.DestHost]}, j.typedParams(), nil, j.flags(live))
	}
	cancel()
	pw.Wait()
	return err
}

// phases are the migration protocol's calls drive makes; *lv.Libvirt has
// them (the rpc interface does not list them).
type phases interface {
	DomainMigrateBegin3Params(dom lv.Domain, params []lv.TypedParam, flags uint32) ([]byte, string, error)
	DomainMigratePrepare3Params(params []lv.TypedParam, cookieIn []byte, flags uint32) ([]byte, lv.OptString, error)
	DomainMigratePerform3Params(dom lv.Domain, dconnuri lv.OptString, params []lv.TypedParam, cookieIn []byte, flags lv.DomainMigrateFlags) ([]byte, error)
	DomainMigrateFinish3Params(params []lv.TypedParam, cookieIn []byte, flags uint32, cancelled int32) (lv.Domain, []byte, error)
	DomainMigrateConfirm3Params(dom lv.Domain, params []lv.TypedParam, cookieIn []byte, flags uint32, cancelled int32) error
}

// driven says whether this migration runs its phases itself (Config.Drive).
func (j *job) driven() bool {
	_, so := j.obs.(hypervisor.SwitchoverObserver)
	return j.d.cfg.Drive && so && !j.req.Params.PostCopy
}

// drive runs the migration's phases as libvirt's client library does
// for a migration that is not peer to peer (virDomainMigrateVersion3Full):
// Begin3 at the source, Prepare3 at the destination (which answers the
// URI its QEMU listens on), Perform3 at the source (the data flows from
// QEMU to QEMU; it returns once the source is paused with everything
// sent), Finish3 at the destination (which starts the guest there), then
// — the domain running at the destination, its paused copy still at the
// source — switchedOver, and last Confirm3 at the source, which destroys
// that copy (or, when the migration was cancelled, resumes it).
func (j *job) drive(src phases, live bool) error {
	d := j.d
	dc, err := d.conn(j.req.DestHost)
	if err != nil {
		return err
	}
	dstRPC, kill, err := d.dial(dc.uri)
	if err != nil {
		return fmt.Errorf("connect to %s for the migration: %v: %w", j.req.DestHost, err, hypervisor.ErrHostUnreachable)
	}
	defer kill()
	dst, ok := dstRPC.(phases)
	if !ok {
		return errors.New("this libvirt client cannot drive a migration's phases")
	}
	flags := j.flags(live)&^lv.MigratePeer2peer | lv.MigrateChangeProtection
	destFlags := uint32(flags &^ (lv.MigrateAbortOnError | lv.MigrateAutoConverge | lv.MigrateChangeProtection))
	params := append(j.typedParams(), lv.TypedParam{Field: lv.MigrateParamDestName, Value: *lv.NewTypedParamValueString(j.req.Domain)})
	cookie, xml, err := src.DomainMigrateBegin3Params(j.dom, params, uint32(flags))
	if err != nil {
		return fmt.Errorf("begin at %s: %w", j.req.SourceHost, err)
	}
	params = append(params, lv.TypedParam{Field: lv.MigrateParamDestXML, Value: *lv.NewTypedParamValueString(xml)})
	if st, _, err := j.stateOn(j.req.SourceHost); err == nil && st == hypervisor.StatePaused {
		// A domain paused before the migration stays paused there (as
		// libvirt decides for itself peer to peer).
		flags |= lv.MigratePaused
		destFlags |= uint32(lv.MigratePaused)
	}
	cookie, uri, err := dst.DomainMigratePrepare3Params(params, cookie, destFlags)
	if err != nil {
		// Begin started a job at the source: Confirm cancels it.
		cerr := src.DomainMigrateConfirm3Params(j.dom, params, nil, uint32(flags), 1)
		return errors.Join(fmt.Errorf("prepare at %s: %w", j.req.DestHost, err), cerr)
	}
	if len(uri) > 0 {
		params = append(params, lv.TypedParam{Field: lv.MigrateParamURI, Value: *lv.NewTypedParamValueString(uri[0])})
	}
	cookie, perr := src.DomainMigratePerform3Params(j.dom, nil, params, cookie, flags)
	cancelled := int32(0)
	if perr != nil {
		cancelled = 1
	}
	_, cookie, ferr := dst.DomainMigrateFinish3Params(params, cookie, destFlags, cancelled)
	if perr != nil {
		// The source has cancelled already; Finish cleaned up the destination.
		return perr
	}
	if ferr != nil {
		cancelled = 1
	} else {
		j.switchedOver("the destination's Finish phase started the domain; the source's Confirm phase comes after this call")
	}
	cerr := src.DomainMigrateConfirm3Params(j.dom, params, cookie, uint32(flags), cancelled)
	if ferr != nil {
		return errors.Join(fmt.Errorf("finish at %s: %w", j.req.DestHost, ferr), cerr)
	}
	if cerr != nil {
		d.cfg.Logger.Warn("confirm failed: the source may keep a paused copy (the placement check removes it)", "domain", j.req.Domain, "err", cerr)
	}
	return nil
}

// lifecycler is the event subscription watchSwitchover needs; *lv.Libvirt
// has it (the rpc interface does not list it).
type lifecycler interface {
	LifecycleEvents(ctx context.Context) (<-chan lv.DomainEventLifecycleMsg, error)
}

// watchSwitchover subscribes, on a connection of its own to the
// destination, to its domain lifecycle events until ctx ends, and calls
// switchedOver when the domain resumes there after the migration
// (VIR_DOMAIN_EVENT_RESUMED with detail MIGRATED, or POSTCOPY when a
// post-copy migration starts the guest at the destination). libvirt sends
// that event from the destination's Finish phase; the source destroys its
// copy only afterwards, in the Confirm phase. It returns once subscribed,
// so that the event cannot be missed; when it cannot subscribe, finish
// calls switchedOver after verifying the placement instead.
func (j *job) watchSwitchover(ctx context.Context) {
	d := j.d
	j.switchedCh = make(chan struct{})
	if _, ok := j.obs.(hypervisor.SwitchoverObserver); !ok || j.driven() {
		return // drive calls switchedOver itself
	}
	c, err := d.conn(j.req.DestHost)
	if err != nil {
		return
	}
	cl, kill, err := d.dial(c.uri)
	if err != nil {
		d.cfg.Logger.Warn("switch-over events: cannot connect to the destination", "domain", j.req.Domain, "host", j.req.DestHost, "err", err)
		return
	}
	lc, ok := cl.(lifecycler)
	if !ok {
		kill()
		return
	}
	ch, err := lc.LifecycleEvents(ctx)
	if err != nil {
		kill()
		d.cfg.Logger.Warn("switch-over events: cannot subscribe", "domain", j.req.Domain, "host", j.req.DestHost, "err", err)
		return
	}
	j.watching = true
	d.jobs.Go(func() {
		defer kill()
		var unsubscribed <-chan time.Time // armed once ctx ends
		for {
			select {
			case ev, ok := <-ch: // read until go-libvirt closes it, or its sender blocks
				if !ok {
					return
				}
				j.lifecycle(ev)
			case <-ctx.Done():
				// go-libvirt unregisters, then closes ch; on a hung daemon
				// that call hangs: give it RPCTimeout, then close the socket.
				t := time.NewTimer(d.cfg.RPCTimeout)
				defer t.Stop()
				unsubscribed, ctx = t.C, context.Background()
			case <-unsubscribed:
				return
			}
		}
	})
}

// lifecycle handles one lifecycle event of the destination.
func (j *job) lifecycle(ev lv.DomainEventLifecycleMsg) {
	if ev.Dom.Name != j.req.Domain || lv.DomainEventType(ev.Event) != lv.DomainEventResumed {
		return
	}
	switch lv.DomainEventResumedDetailType(ev.Detail) {
	case lv.DomainEventResumedMigrated:
		j.switchedOver("the destination resumed the domain (libvirt event RESUMED_MIGRATED)")
	case lv.DomainEventResumedPostcopy:
		j.switchedOver("post-copy: the domain runs at the destination (libvirt event RESUMED_POSTCOPY)")
	}
}

// switchedOver records the switch-over and tells the observer, once, if
// it is a hypervisor.SwitchoverObserver.
func (j *job) switchedOver(how string) {
	so, ok := j.obs.(hypervisor.SwitchoverObserver)
	if !ok {
		return
	}
	j.switched.Do(func() {
		j.d.record(Step{Domain: j.req.Domain, Kind: "switchover", Host: j.req.DestHost, Detail: how})
		so.SwitchedOver()
		close(j.switchedCh)
	})
}

// eventGrace is how long finish waits for the destination's RESUMED event
// of a domain it found running there before telling the observer itself.
const eventGrace = time.Second

// awaitSwitchover makes sure the observer has heard of a switch-over to
// the destination, where the domain runs: from the event, if it comes
// within eventGrace, else now.
func (j *job) awaitSwitchover() {
	if j.watching {
		t := time.NewTimer(eventGrace)
		defer t.Stop()
		select {
		case <-j.switchedCh:
			return
		case <-t.C:
		}
	}
	j.switchedOver("the domain runs at the destination (found after the migration; no RESUMED event seen)")
}

// poll reads job statistics every PollInterval and watches for stalls and
// non-convergence.
func (j *job) poll(ctx context.Context) {
	d := j.d
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	j.mu.Lock()
	j.lastProgAt = time.Now()
	j.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var typ int32
		var p []lv.TypedParam
		err := d.call(j.req.SourceHost, func(c rpc) error {
			var err error
			typ, p, err = c.DomainGetJobStats(j.dom, 0)
			return err
		})
		if err != nil {
			continue
		}
		ji := jobInfo(typ, p)
		if ji.Type == hypervisor.JobNone {
			continue // not started yet, or just ended
		}
		j.mu.Lock()
		now := time.Now()
		if ji.MemIteration != j.roundIter {
			j.roundIter, j.roundStart = ji.MemIteration, now
		}
		if ji.Phase == hypervisor.PhasePrecopy {
			ji.MemRoundElapsed = now.Sub(j.roundStart)
		}
		j.info = ji
		if ji.DataProcessed > j.lastProg {
			j.lastProg, j.lastProgAt = ji.DataProcessed, now
		}
		stalled := now.Sub(j.lastProgAt) > d.cfg.StallTimeout
		limit := d.cfg.MaxIterations
		if j.req.Params.AutoConverge {
			limit *= 2 // throttling needs rounds to bite
		}
		notConverging := j.live && !j.postcopy && !j.paused && ji.MemIteration > limit
		stop := j.stopReason == nil && (stalled || notConverging)
		switchPC := notConverging && j.req.Params.PostCopy && j.stopReason == nil
		if switchPC {
			j.postcopy = true
			stop = false
		} else if stop && stalled {
			j.stopReason = fmt.Errorf("no progress for %v: %w", d.cfg.StallTimeout, hypervisor.ErrLinkDown)
		} else if stop {
			j.stopReason = fmt.Errorf("%d memory iterations, %d MiB still dirty: %w", ji.MemIteration, ji.MemRemaining>>20, hypervisor.ErrNotConverging)
		}
		why := j.stopReason
		j.mu.Unlock()
		switch {
		case switchPC:
			err := d.call(j.req.SourceHost, func(c rpc) error { return c.DomainMigrateStartPostCopy(j.dom, 0) })
			d.record(Step{Domain: j.req.Domain, Kind: "postcopy", Host: j.req.SourceHost,
				Detail: fmt.Sprintf("pre-copy not converging after %d iterations", ji.MemIteration), Err: errString(err)})
		case stop:
			err := d.call(j.req.SourceHost, func(c rpc) error { return c.DomainAbortJob(j.dom) })
			d.record(Step{Domain: j.req.Domain, Kind: "abort", Host: j.req.SourceHost, Detail: why.Error(), Err: errString(err)})
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Info returns the latest job statistics (read every PollInterval; Info
// never blocks on libvirt). After the end: the final ones. Paused and
// PostCopy say the mode; MemRoundElapsed is measured from the poll that
// first saw the current iteration, so it may be short by a PollInterval.
func (j *job) Info() (hypervisor.JobInfo, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	info := j.info
	if j.ended {
		info = j.final
	} else if j.postcopy {
		info.Phase = hypervisor.PhasePostcopy
	}
	info.Paused = j.paused || !j.live
	info.PostCopy = j.postcopy
	return info, nil
}

// SetMaxSpeed changes the bandwidth cap (virDomainMigrateSetMaxSpeed, in
// MiB/s rounded up; 0 lifts the cap).
func (j *job) SetMaxSpeed(bytesPerSec float64) error {
	j.mu.Lock()
	ended := j.ended
	j.mu.Unlock()
	if ended {
		return fmt.Errorf("libvirt: set max speed of %s: %w", j.req.Domain, ErrNotActive)
	}
	if bytesPerSec < 0 || math.IsNaN(bytesPerSec) || math.IsInf(bytesPerSec, 0) {
		return fmt.Errorf("libvirt: set max speed of %s to %v bytes/s: invalid", j.req.Domain, bytesPerSec)
	}
	err := j.d.call(j.req.SourceHost, func(c rpc) error { return c.DomainMigrateSetMaxSpeed(j.dom, mibps(bytesPerSec), 0) })
	if err != nil {
		return fmt.Errorf("libvirt: set max speed of %s: %w", j.req.Domain, mapErr(err))
	}
	j.mu.Lock()
	j.bandwidth = bytesPerSec
	j.mu.Unlock()
	return nil
}

// Abort cancels the migration (virDomainAbortJob, sent in the background so
// that Abort does not block its caller); the observer gets ErrAborted
// unless the migration completed first. In post-copy the guest already
// runs at the destination and libvirt refuses: hypervisor.ErrNotAllowed.
func (j *job) Abort() error {
	j.mu.Lock()
	if j.ended {
		j.mu.Unlock()
		return fmt.Errorf("libvirt: abort migration of %s: %w", j.req.Domain, ErrNotActive)
	}
	if j.postcopy {
		j.mu.Unlock()
		return fmt.Errorf("libvirt: abort migration of %s: it is in post-copy: %w", j.req.Domain, hypervisor.ErrNotAllowed)
	}
	if j.stopReason == nil {
		j.stopReason = hypervisor.ErrAborted
	}
	j.mu.Unlock()
	j.d.jobs.Go(func() {
		err := j.d.call(j.req.SourceHost, func(c rpc) error { return c.DomainAbortJob(j.dom) })
		j.d.record(Step{Domain: j.req.Domain, Kind: "abort", Host: j.req.SourceHost, Detail: "requested", Err: errString(err)})
	})
	return nil
}

// StartPostCopy switches a running migration (started live with
// Params.PostCopy) to post-copy (virDomainMigrateStartPostCopy): the
// guest runs at the destination from now on and fetches the pages it
// still lacks. Without Params.PostCopy, for a non-live migration or after
// Pause it is hypervisor.ErrNotAllowed; a second call does nothing.
func (j *job) StartPostCopy() error {
	fail := func(why string) error {
		return fmt.Errorf("libvirt: post-copy of %s: %s: %w", j.req.Domain, why, hypervisor.ErrNotAllowed)
	}
	j.mu.Lock()
	ended, live, already, paused := j.ended, j.live, j.postcopy, j.paused
	if !ended && live && j.req.Params.PostCopy && !paused {
		j.postcopy = true // before the call, so that the poller does not abort meanwhile
	}
	j.mu.Unlock()
	switch {
	case ended:
		return fmt.Errorf("libvirt: post-copy of %s: %w", j.req.Domain, ErrNotActive)
	case !j.req.Params.PostCopy || !live:
		return fail("the migration was not started live with Params.PostCopy")
	case already:
		return nil
	case paused:
		return fail("it is paused, copying what is left")
	}
	err := j.d.call(j.req.SourceHost, func(c rpc) error { return c.DomainMigrateStartPostCopy(j.dom, 0) })
	j.d.record(Step{Domain: j.req.Domain, Kind: "postcopy", Host: j.req.SourceHost, Detail: "requested", Err: errString(err)})
	if err != nil {
		j.mu.Lock()
		j.postcopy = false
		j.mu.Unlock()
		return fmt.Errorf("libvirt: post-copy of %s: %w", j.req.Domain, mapErr(err))
	}
	return nil
}

// suspender is the call Pause needs; *lv.Libvirt has it (the rpc
// interface does not list it).
type suspender interface {
	DomainSuspend(dom lv.Domain) error
}

// Pause switches a live migration to pause-and-copy: virDomainSuspend of
// the source domain while the job runs. libvirt marks it paused for the
// migration (VIR_DOMAIN_PAUSED_MIGRATION), QEMU sends the pages still dirty
// and switches over, and the destination resumes it: whether to leave it
// paused there (VIR_MIGRATE_PAUSED) was decided from its state when the
// migration began. finish resumes it at the destination should it still
// be paused. Pausing a non-live or already paused migration does nothing;
// in post-copy it is hypervisor.ErrNotAllowed.
func (j *job) Pause() error {
	j.mu.Lock()
	ended, live, postcopy, already := j.ended, j.live, j.postcopy, j.paused
	if !ended && live && !postcopy {
		j.paused = true // before the call, so that the poller does not abort meanwhile
	}
	j.mu.Unlock()
	switch {
	case ended:
		return fmt.Errorf("libvirt: pause migration of %s: %w", j.req.Domain, ErrNotActive)
	case postcopy:
		return fmt.Errorf("libvirt: pause migration of %s: it is in post-copy: %w", j.req.Domain, hypervisor.ErrNotAllowed)
	case !live || already:
		return nil
	}
	err := j.d.call(j.req.SourceHost, func(c rpc) error {
		s, ok := c.(suspender)
		if !ok {
			return errors.New("this libvirt client cannot suspend domains")
		}
		return s.DomainSuspend(j.dom)
	})
	j.d.record(Step{Domain: j.req.Domain, Kind: "pause", Host: j.req.SourceHost,
		Detail: "suspended the guest: it is copied paused from now", Err: errString(err)})
	if err != nil {
		j.mu.Lock()
		j.paused = false
		j.mu.Unlock()
		return fmt.Errorf("libvirt: pause migration of %s: %w", j.req.Domain, mapErr(err))
	}
	return nil
}

// resumeIfPaused resumes the domain on host if it is paused there.
func (j *job) resumeIfPaused(host string) {
	if st, _, err := j.stateOn(host); err == nil && st == hypervisor.StatePaused {
		j.resume(host)
	}
}

// PostCopier is implemented by this driver's jobs.
type PostCopier interface{ StartPostCopy() error }

// stateOn reports the domain's state on host ("" when not defined there).
func (j *job) stateOn(host string) (hypervisor.DomainState, bool, error) {
	var st hypervisor.DomainState
	defined := false
	err := j.d.call(host, func(c rpc) error {
		dom, err := c.DomainLookupByName(j.req.Domain)
		if err != nil {
			if lv.IsNotFound(err) {
				return nil
			}
			return err
		}
		defined = true
		s, _, err := c.DomainGetState(dom, 0)
		if err != nil {
			if lv.IsNotFound(err) {
				defined = false
				return nil
			}
			return err
		}
		st = domState(s)
		return nil
	})
	return st, defined, err
}

// verify checks that the domain is active on exactly one of source and
// destination, repairs what it can, records the outcome and returns where
// the domain runs ("" when nowhere). succeeded says whether the migration
// reported success (then the destination's copy is authoritative).
func (j *job) verify(succeeded bool) (string, error) {
	src, dst := j.req.SourceHost, j.req.DestHost
	sst, sdef, serr := j.stateOn(src)
	dstSt, ddef, derr := j.stateOn(dst)
	onSrc, onDst := isActive(sst), isActive(dstSt)
	detail := fmt.Sprintf("%s: %s, %s: %s", src, stateString(sst, sdef, serr), dst, stateString(dstSt, ddef, derr))
	rec := func(kind, what string, err error) {
		j.d.record(Step{Domain: j.req.Domain, Kind: kind, Detail: what + " (" + detail + ")", Err: errString(err)})
	}
	switch {
	case serr != nil && derr != nil:
		rec("verify", "both hosts unreachable", errors.Join(serr, derr))
		return "", fmt.Errorf("cannot tell where %s runs: %w", j.req.Domain, errors.Join(serr, derr))
	case serr != nil && !onDst && !succeeded:
		// The source does not answer and the destination does not run
		// it: it is still where it was, as far as anyone can tell.
		rec("verify", "source unreachable; assuming the domain is still there", serr)
		return src, fmt.Errorf("source %s unreachable, placement not verified: %w", src, serr)
	case derr != nil && !onSrc && succeeded:
		rec("verify", "destination unreachable after a reported success; assuming the domain runs there", derr)
		return dst, nil
	case onSrc && onDst:
		// Two copies: keep the authoritative one.
		keep, drop := src, dst
		if succeeded {
			keep, drop = dst, src
		}
		err := j.d.call(drop, func(c rpc) error {
			dom, err := c.DomainLookupByName(j.req.Domain)
			if err != nil {
				return err
			}
			return c.DomainDestroy(dom)
		})
		rec("repair", "active on both hosts; destroyed the copy on "+drop, err)
		if keep == src && sst == hypervisor.StatePaused {
			j.resume(src)
		}
		return keep, err
	case onDst:
		rec("verify", "active on the destination only", nil)
		return dst, nil
	case onSrc:
		if sst == hypervisor.StatePaused {
			j.resume(src)
		}
		rec("verify", "active on the source only", nil)
		return src, nil
	}
	// Active nowhere: start it from its disk where it is defined,
	// preferring the destination after a success.
	order := []string{src, dst}
	if succeeded {
		order = []string{dst, src}
	}
	defined := map[string]bool{src: sdef, dst: ddef}
	for _, h := range order {
		if !defined[h] {
			continue
		}
		if err := j.restart(h, false); err == nil {
			rec("repair", "active nowhere; restarted from its disk on "+h, nil)
			return h, nil
		}
	}
	rec("verify", "active nowhere and could not be restarted", nil)
	return "", fmt.Errorf("%s is active on neither %s nor %s: %w", j.req.Domain, src, dst, hypervisor.ErrDomainLost)
}

func stateString(st hypervisor.DomainState, defined bool, err error) string {
	switch {
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case !defined:
		return "absent"
	}
	return string(st)
}

func (j *job) resume(host string) {
	err := j.d.call(host, func(c rpc) error {
		dom, err := c.DomainLookupByName(j.req.Domain)
		if err != nil {
			return err
		}
		return c.DomainResume(dom)
	})
	j.d.record(Step{Domain: j.req.Domain, Kind: "repair", Host: host, Detail: "resumed the paused domain", Err: errString(err)})
}

// restart destroys (if active) and starts the domain on host, then waits
// for the guest to answer.
func (j *job) restart(host string, destroy bool) error {
	d := j.d
	err := d.callTimeout(host, d.cfg.BootTimeout, func(c rpc) error {
		dom, err := c.DomainLookupByName(j.req.Domain)
		if err != nil {
			return err
		}
		if destroy {
			if err := c.DomainDestroy(dom); err != nil && !strings.Contains(err.Error(), "not running") {
				return err
			}
		}
		return c.DomainCreate(dom)
	})
	if err != nil {
		d.record(Step{Domain: j.req.Domain, Kind: "restart", Host: host, Err: err.Error()})
		return err
	}
	err = j.waitHealthy(host, 0, d.cfg.BootTimeout)
	d.record(Step{Domain: j.req.Domain, Kind: "restart", Host: host, Detail: "started from its disk", Err: errString(err)})
	return err
}

// waitHealthy polls the health check on host until it passes after settle
// has elapsed, or timeout.
func (j *job) waitHealthy(host string, settle, timeout time.Duration) error {
	d := j.d
	start := time.Now()
	var last error
	agent := true
	_ = d.call(host, func(c rpc) error {
		dom, err := c.DomainLookupByName(j.req.Domain)
		if err != nil {
			return err
		}
		x, err := c.DomainGetXMLDesc(dom, 0)
		if err == nil {
			agent = hasAgent(x)
		}
		return nil
	})
	for {
		var st hypervisor.DomainState
		err := d.call(host, func(c rpc) error {
			dom, err := c.DomainLookupByName(j.req.Domain)
			if err != nil {
				return err
			}
			s, _, err := c.DomainGetState(dom, 0)
			if err != nil {
				return err
			}
			if st = domState(s); st != hypervisor.StateRunning {
				return fmt.Errorf("domain is %s", st)
			}
			if !agent {
				return nil
			}
			ctx, cancel := context.WithTimeout(d.ctx, d.cfg.HealthTimeout)
			defer cancel()
			return d.cfg.Health(ctx, c, dom)
		})
		last = err
		if err == nil && time.Since(start) >= settle {
			return nil
		}
		if st == hypervisor.StateShutoff || st == hypervisor.StateCrashed {
			return fmt.Errorf("guest %s on %s: %w", j.req.Domain, host, err)
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("guest %s on %s not healthy within %v: %w", j.req.Domain, host, timeout, last)
		}
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// finish determines the outcome, checks placement and health, and calls
// the observer once.
func (j *job) finish(perr error, finished time.Time) {
	d := j.d
	req := j.req
	res := hypervisor.Result{Domain: req.Domain, Source: req.SourceHost, Dest: req.DestHost, Started: j.started, Finished: finished}
	// Final statistics: the destination keeps the completed job's.
	var final hypervisor.JobInfo
	restarted := false
	for _, h := range []string{req.DestHost, req.SourceHost} {
		var typ int32
		var p []lv.TypedParam
		err := d.call(h, func(c rpc) error {
			dom, err := c.DomainLookupByName(req.Domain)
			if err != nil {
				return err
			}
			typ, p, err = c.DomainGetJobStats(dom, lv.DomainJobStatsCompleted)
			return err
		})
		if err == nil && lv.DomainJobType(typ) == lv.DomainJobCompleted && params(p).has(lv.DomainJobTimeElapsed) {
			final = jobInfo(typ, p)
			break
		}
	}
	where, verr := j.verify(perr == nil)
	res.RunningOn = where
	err := perr
	if why := j.reason(); err != nil && why != nil {
		err = fmt.Errorf("%w (libvirt: %v)", why, perr)
	}
	switch {
	case where == req.DestHost:
		if err != nil {
			d.record(Step{Domain: req.Domain, Kind: "verify", Host: req.DestHost,
				Detail: "libvirt reported failure but the domain runs at the destination: the migration completed", Err: err.Error()})
			err = nil
		}
		res.Downtime = final.Downtime
		res.Bytes = final.DataProcessed
		res.Rounds = final.MemIteration
		if final.MemDirtyRate > 0 {
			d.mu.Lock()
			d.dirty[req.Domain] = final.MemDirtyRate
			d.mu.Unlock()
		}
		switchover := finished
		j.mu.Lock()
		paused := j.paused
		j.mu.Unlock()
		if paused {
			j.resumeIfPaused(req.DestHost)
		}
		j.awaitSwitchover()
		herr := j.waitHealthy(req.DestHost, d.cfg.HealthSettle, d.cfg.HealthTimeout)
		d.record(Step{Domain: req.Domain, Kind: "health", Host: req.DestHost, Detail: "after switch-over", Err: errString(herr)})
		if herr != nil && d.ctx.Err() == nil { // never restart because the driver is closing
			if rerr := j.restart(req.DestHost, true); rerr != nil {
				err = fmt.Errorf("guest dead after the switch-over (%v) and restart failed: %v: %w", herr, rerr, hypervisor.ErrDomainLost)
				res.RunningOn = ""
			} else {
				restarted = true
				res.Downtime += time.Since(switchover)
			}
		}
	case err == nil:
		err = verr
		if err == nil {
			err = fmt.Errorf("libvirt reported success but the domain runs on %q: %w", where, hypervisor.ErrDomainLost)
		}
	default:
		if where == "" && verr != nil {
			err = fmt.Errorf("%w; %w", err, verr)
		}
	}
	info := final
	if err == nil {
		info.Type = hypervisor.JobCompleted
		info.Phase = hypervisor.PhaseDone
	} else {
		j.mu.Lock()
		info = j.info
		j.mu.Unlock()
		info.Type = hypervisor.JobFailed
		if errors.Is(err, hypervisor.ErrAborted) {
			info.Type = hypervisor.JobCancelled
		}
		res.Err = fmt.Errorf("libvirt: migrate %s from %s to %s: %w", req.Domain, req.SourceHost, req.DestHost, mapErr(err))
		if info.DataProcessed > 0 {
			res.Bytes = info.DataProcessed
		}
	}
	kind := "done"
	if res.Err != nil {
		kind = "failed"
	}
	d.record(Step{Domain: req.Domain, Kind: kind, Host: res.RunningOn,
		Detail: fmt.Sprintf("%.2f s, downtime %v, %d MiB, %d iterations", finished.Sub(j.started).Seconds(), res.Downtime, res.Bytes>>20, res.Rounds),
		Err:    errString(res.Err)})
	j.mu.Lock()
	j.ended, j.final = true, info
	live := j.live
	j.mu.Unlock()
	d.mu.Lock()
	d.records = append(d.records, Record{Domain: req.Domain, Source: req.SourceHost, Dest: req.DestHost, Started: j.started,
		Finished: finished, Downtime: final.Downtime, Restarted: restarted, Outage: res.Downtime, Bytes: res.Bytes,
		Rounds: res.Rounds, Live: live, RunningOn: res.RunningOn, Err: errString(res.Err)})
	delete(d.active, req.Domain)
	d.incoming[req.DestHost] -= j.memory
	d.mu.Unlock()
	j.obs.MigrationDone(res)
}

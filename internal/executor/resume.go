package executor

import "fmt"

// Resume carries an evacuation over from an earlier executor: one that
// another controller ran before it died or was deposed, or one paused by
// an operator. It is read from the journal (Config.Journal's records).
type Resume struct {
	// Attempts holds, per VM name, the attempts already used: they count
	// against MaxAttempts.
	Attempts map[string]int
	// Migrated names the VMs the earlier executor migrated: they are never
	// migrated again and are reported migrated.
	Migrated map[string]bool
	// InFlight maps VMs whose migration the earlier executor started, and
	// which may still be under way in the hypervisors, to the destination
	// host it started towards. They are left alone, and the destination's
	// room stays reserved for them, until Settle says where they ended;
	// the executor does not finish before.
	InFlight map[string]string
}

// resumeState is what the executor keeps of a Resume.
type resumeState struct {
	// inFlight maps a VM still in flight to its destination host.
	inFlight map[int]int
}

// checkResume checks that r names only known VMs and hosts; New calls it.
func (e *Executor) checkResume(r *Resume) error {
	if r == nil {
		return nil
	}
	for name := range r.Attempts {
		if _, ok := e.ix.VMByName[name]; !ok {
			return fmt.Errorf("executor: resume: attempts for unknown VM %q", name)
		}
	}
	for name := range r.Migrated {
		if _, ok := e.ix.VMByName[name]; !ok {
			return fmt.Errorf("executor: resume: unknown migrated VM %q", name)
		}
	}
	for name, to := range r.InFlight {
		if _, ok := e.ix.VMByName[name]; !ok {
			return fmt.Errorf("executor: resume: unknown VM %q in flight", name)
		}
		if _, ok := e.ix.HostByName[to]; !ok {
			return fmt.Errorf("executor: resume: VM %s in flight to unknown host %q", name, to)
		}
	}
	return nil
}

// applyResume marks what r carries over. Start calls it once the
// deadlines are set, so that the VMs it names count as part of this
// evacuation, not of an earlier one.
func (e *Executor) applyResume(r *Resume) {
	e.resume.inFlight = map[int]int{}
	if r == nil {
		return
	}
	for name, n := range r.Attempts {
		v := e.ix.VMByName[name]
		e.attempts[v] = n
		e.records[v].Attempts = n
	}
	for name := range r.Migrated {
		v := e.ix.VMByName[name]
		e.migrated[v] = true
		e.records[v].Status = StatusMigrated
	}
	e.led.mu.Lock()
	defer e.led.mu.Unlock()
	for name, to := range r.InFlight {
		v, h := e.ix.VMByName[name], e.ix.HostByName[to]
		e.resume.inFlight[v] = h
		e.migrated[v] = true // frozen until settled
		e.commit(v, h, 1)
		e.records[v].Status, e.records[v].To = StatusRunning, to
		// In the ledger, its destination's room is taken (its path's
		// bandwidth is not known).
		e.led.fly(&flight{owner: e.me, vm: v, to: h})
	}
}

// Settle tells the executor where a VM that Resume.InFlight named runs now
// that its migration has ended (host: a host name, "" if it was lost). A
// VM back on its source is planned again.
func (e *Executor) Settle(vm, host string) error {
	e.mu.Lock()
	defer e.unlock()
	v, ok := e.ix.VMByName[vm]
	if !ok {
		return fmt.Errorf("executor: settle: unknown VM %q", vm)
	}
	dst, ok := e.resume.inFlight[v]
	if !ok {
		return fmt.Errorf("executor: settle: VM %s was not in flight", vm)
	}
	h := -1
	if host != "" {
		if h, ok = e.ix.HostByName[host]; !ok {
			return fmt.Errorf("executor: settle: VM %s on unknown host %q", vm, host)
		}
	}
	delete(e.resume.inFlight, v)
	e.led.mu.Lock()
	e.led.land(e.me, v, h)
	e.led.mu.Unlock()
	e.commit(v, dst, -1)
	if old := e.placement[v]; old != h {
		if old >= 0 {
			e.commit(v, old, -1)
		}
		if h >= 0 {
			e.commit(v, h, 1)
		}
		e.placement[v] = h
	}
	rec := &e.records[v]
	switch {
	case h < 0:
		rec.Status, rec.To, rec.Reason = StatusLost, "", "lost while the previous leader migrated it"
	case h == dst:
		rec.Status, rec.Finished = StatusMigrated, e.now()
	default:
		e.migrated[v] = false
		rec.Status, rec.To = StatusPending, ""
	}
	if e.finished || !e.started {
		return nil
	}
	e.replan("a migration started by the previous leader ended")
	e.dropInfeasible()
	e.pump()
	return nil
}

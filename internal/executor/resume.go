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
}

// applyResume marks what r carries over; New calls it.
func (e *Executor) applyResume(r *Resume) error {
	if r == nil {
		return nil
	}
	for name, n := range r.Attempts {
		v, ok := e.ix.VMByName[name]
		if !ok {
			return fmt.Errorf("executor: resume: attempts for unknown VM %q", name)
		}
		e.attempts[v] = n
		e.records[v].Attempts = n
	}
	for name := range r.Migrated {
		v, ok := e.ix.VMByName[name]
		if !ok {
			return fmt.Errorf("executor: resume: unknown migrated VM %q", name)
		}
		e.migrated[v] = true
		e.records[v].Status = StatusMigrated
	}
	return nil
}

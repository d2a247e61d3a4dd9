package controller

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/store"
)

// Failpoints: named places in the journal where a test may kill the
// leader (Config.Failpoint). Each is a moment of an executor step.
const (
	// FPBeforeIntent: a migration is about to start; nothing is written.
	FPBeforeIntent = "before-start-intent"
	// FPAfterIntent: the start's intent is written; the driver was not
	// asked.
	FPAfterIntent = "after-start-intent"
	// FPAfterStart: the driver started the migration; its result is not
	// written.
	FPAfterStart = "after-start"
	// FPBeforeEnd: the migration ended; its end is not written.
	FPBeforeEnd = "before-end-result"
	// FPAfterEnd: the migration's end is written.
	FPAfterEnd = "after-end-result"
	// FPBeforeAbort: an abort is about to be asked of the driver.
	FPBeforeAbort = "before-abort-intent"
)

// Failpoints of the alert pipeline's target (alerts.go), when it starts
// or retargets an operation.
const (
	// FPAlertIntent: the intent (the operation and its sites) is
	// written; the controller did not act.
	FPAlertIntent = "alert-after-intent"
	// FPAlertApplied: the operation was started or retargeted; the
	// outcome is not written.
	FPAlertApplied = "alert-after-apply"
)

// Failpoints lists every failpoint.
var Failpoints = []string{FPBeforeIntent, FPAfterIntent, FPAfterStart, FPBeforeEnd, FPAfterEnd, FPBeforeAbort, FPAlertIntent, FPAlertApplied}

// errStopped: the controller stopped or crashed; the executor is fenced.
var errStopped = errors.New("controller stopped")

// journal writes an operation's executor steps to etcd, fenced by the
// leadership they were taken under (executor.Journal).
type journal struct {
	c    *Controller
	op   string
	lead *store.Leadership
	// stopped: the controller stepped down or crashed; every later step
	// is refused and nothing more is written.
	stopped *atomic.Bool
	// fenced: a step was refused.
	fenced atomic.Bool
	// alertAt, if set, is when the alert that started the evacuation
	// reached the controller; the first migration started reports the
	// latency since.
	alertAt   time.Time
	firstDone atomic.Bool
}

const writeTimeout = 5 * time.Second

// Intent implements executor.Journal.
func (j *journal) Intent(st executor.Step) error {
	if err := j.intent(st); err != nil {
		j.fenced.Store(true)
		return err
	}
	return nil
}

func (j *journal) intent(st executor.Step) error {
	if st.Kind == executor.StepStart && j.c.failpoint(FPBeforeIntent) || st.Kind == executor.StepAbort && j.c.failpoint(FPBeforeAbort) {
		return errStopped
	}
	if j.stopped.Load() {
		return errStopped
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var err error
	if st.Kind == executor.StepStart {
		j.c.log.Debug("journal intent", "vm", st.VM, "to", st.To, "attempt", st.Attempt)
		err = j.c.cfg.Store.PutSteps(ctx, j.lead, j.op, store.VMStep{VM: st.VM, State: store.VMStarting, From: st.From, To: st.To, Attempt: st.Attempt})
	} else {
		err = j.c.cfg.Store.Check(ctx, j.lead)
	}
	if err != nil {
		return fmt.Errorf("journal %s of %s: %w", st.Kind, st.VM, err)
	}
	if st.Kind == executor.StepStart && j.c.failpoint(FPAfterIntent) {
		return errStopped
	}
	return nil
}

// Result implements executor.Journal.
func (j *journal) Result(st executor.Step, err error) {
	var step store.VMStep
	switch st.Kind {
	case executor.StepStart:
		if j.c.failpoint(FPAfterStart) {
			return
		}
		step = store.VMStep{VM: st.VM, State: store.VMRunning, From: st.From, To: st.To, Attempt: st.Attempt}
		if err != nil {
			step.State, step.Error = store.VMPending, err.Error()
		} else if !j.alertAt.IsZero() && j.firstDone.CompareAndSwap(false, true) {
			j.c.cfg.Metrics.alertToFirstMigration(time.Since(j.alertAt))
		}
	case executor.StepEnd:
		if j.c.failpoint(FPBeforeEnd) {
			return
		}
		step = store.VMStep{VM: st.VM, State: store.VMMigrated, From: st.From, To: st.To, Attempt: st.Attempt}
		if err != nil {
			step.State, step.Error = store.VMPending, err.Error()
		}
		defer j.c.failpoint(FPAfterEnd)
	default:
		return
	}
	if j.stopped.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	j.c.log.Debug("journal result", "vm", step.VM, "state", step.State, "to", step.To, "attempt", step.Attempt, "err", step.Error)
	if werr := j.c.cfg.Store.PutSteps(ctx, j.lead, j.op, step); werr != nil {
		// The next intent fails the same way and fences the executor;
		// the next leader settles this VM from the hypervisors' state.
		j.c.log.Warn("journal: result not written", "op", j.op, "vm", st.VM, "step", st.Kind, "err", werr)
	}
}

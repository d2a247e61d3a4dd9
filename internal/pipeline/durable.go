package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/threat"
)

// Journal keeps the pipeline's state where a successor finds it (the
// controller's store). The pipeline records a world's state whenever it
// changed (a newer alert, a withdrawal, a held site, an operator's
// decision, what the target applied), together with the alerts accepted
// and the decisions made since the last record (each in one Record only,
// once it succeeded), before the target acts on it. A Record that fails
// leaves the change in memory and is tried again on the next Submit,
// decision or Retry; the target is not asked meanwhile.
type Journal interface {
	// Record writes one world's state and the alerts accepted since its
	// last record, atomically, and deletes the alerts of forgotten
	// threads.
	Record(r Record) error
	// Load returns everything recorded.
	Load(ctx context.Context) (Snapshot, error)
}

// Record is one change of a world's state.
type Record struct {
	World WorldState `json:"world"`
	// Alerts are the alerts accepted since the last record.
	Alerts []Received `json:"alerts,omitempty"`
	// Forgotten are the threads (ThreadID) pruned since the last record:
	// their alerts go.
	Forgotten []string `json:"forgotten,omitempty"`
	// Causes are the alerts accepted and the operators' decisions made
	// since the last record, oldest first (what an audit log takes).
	Causes []Cause `json:"causes,omitempty"`
}

// Cause is a change of a world's state that the target may have to carry
// out: an alert accepted (Thread set) or an operator's decision on a
// held site (Site set).
type Cause struct {
	Drill bool `json:"drill,omitempty"`
	// Thread and Version name the alert as Received does; the other
	// fields describe it.
	Thread  string        `json:"thread,omitempty"`
	Version string        `json:"version,omitempty"`
	Kind    alert.Kind    `json:"kind,omitempty"`
	EventID string        `json:"event_id,omitempty"`
	Serial  int           `json:"serial,omitempty"`
	MsgType alert.MsgType `json:"msg_type,omitempty"`
	Status  alert.Status  `json:"status,omitempty"`
	// Site is the held site an operator decided, Approved the decision.
	Site     string `json:"site,omitempty"`
	Approved bool   `json:"approved,omitempty"`
	// By is who delivered the alert (WithSource) or decided; At is when
	// the pipeline took it, on the wall clock.
	By string    `json:"by,omitempty"`
	At time.Time `json:"at"`
}

// String describes c: "eew event ev-1 serial 2 (update, actual) from
// relay-1", "kochi's evacuation approved by alice".
func (c Cause) String() string {
	var s string
	switch {
	case c.Site != "":
		verb := "declined"
		if c.Approved {
			verb = "approved"
		}
		s = fmt.Sprintf("%s's evacuation %s", c.Site, verb)
		if c.By != "" {
			s += " by " + c.By
		}
	default:
		s = fmt.Sprintf("%s event %s serial %d (%s, %s)", c.Kind, c.EventID, c.Serial, c.MsgType, c.Status)
		if c.By != "" {
			s += " from " + c.By
		}
	}
	if c.Drill {
		s = "drill: " + s
	}
	return s
}

// Received is one accepted alert, as Submit took it.
type Received struct {
	Drill bool `json:"drill,omitempty"`
	// Thread is the alert's thread (kind and event id, see ThreadID); ID
	// names the version within it (serial, product, message type and
	// issue time).
	Thread string       `json:"thread"`
	ID     string       `json:"id"`
	Alert  *alert.Alert `json:"alert"`
	// By is who delivered it (WithSource).
	By string `json:"by,omitempty"`
}

// WorldState is what the pipeline knows and decided for one world (the
// real federation, or the drill copy).
type WorldState struct {
	Drill   bool          `json:"drill,omitempty"`
	Threads []ThreadState `json:"threads"`
	// Pending are the sites waiting for an operator, with the deadline
	// they were held at.
	Pending map[string]time.Time `json:"pending,omitempty"`
	// Decisions are the operators' answers, per site, until the site's
	// threat is withdrawn.
	Decisions map[string]Decision `json:"decisions,omitempty"`
	// Applied are the deadlines the target last carried out, Watch the
	// sites it treats as watched.
	Applied map[string]time.Time `json:"applied,omitempty"`
	Watch   []string             `json:"watch,omitempty"`
	// Causes are the alerts accepted and decisions made since the target
	// last applied, oldest first: what it applies next is their doing.
	Causes []Cause `json:"causes,omitempty"`
}

// ThreadState is one event's thread: its latest version, the assessments
// of its latest serial and what they want of each site.
type ThreadState struct {
	Kind      alert.Kind                    `json:"kind"`
	EventID   string                        `json:"event_id"`
	Latest    *alert.Alert                  `json:"latest"`
	Cancelled bool                          `json:"cancelled,omitempty"`
	Current   map[string]*threat.Assessment `json:"current,omitempty"`
	Wants     map[string]Want               `json:"wants,omitempty"`
	Last      time.Time                     `json:"last"`
}

// Want is what a thread wants of a site.
type Want struct {
	Level    threat.Level `json:"level"`
	Deadline time.Time    `json:"deadline,omitzero"` // pipeline time, evacuate only
	Hazard   string       `json:"hazard,omitempty"`
	Reason   string       `json:"reason,omitempty"`
}

// Snapshot is everything a Journal recorded.
type Snapshot struct {
	Worlds []WorldState `json:"worlds"`
	Alerts []Received   `json:"alerts"`
}

// ThreadID names an event's thread in a Journal: its kind and its event
// id, path-escaped.
func ThreadID(kind alert.Kind, eventID string) string {
	return string(kind) + "/" + url.PathEscape(eventID)
}

func (k threadKey) id() string { return ThreadID(k.kind, k.eventID) }

func (k msgKey) id() string {
	return fmt.Sprintf("%d-%s-%s-%d", k.serial, url.PathEscape(k.product), k.msgType, k.issued)
}

func keyOf(a *alert.Alert) msgKey {
	return msgKey{a.Serial, a.Product, a.MsgType, a.IssuedAt.UnixNano()}
}

// maxUnrecorded bounds the alerts, the forgotten threads and the causes
// a world keeps for its next record while recording fails (the store
// takes 50 alerts and forgotten threads, and 48 audit entries, in one
// write), and the causes it keeps for its next apply. Older versions
// dropped from it are not needed to recognise repeats after a restore (a
// thread's latest version is in its state); a forgotten thread dropped
// leaves its alerts in the store, where Restore ignores them; the oldest
// causes dropped are missing from the audit log.
const maxUnrecorded = 24

// keepLast appends v to s, keeping the last maxUnrecorded.
func keepLast[T any](s []T, v T) []T {
	s = append(s, v)
	if len(s) > maxUnrecorded {
		s = slices.Delete(s, 0, len(s)-maxUnrecorded)
	}
	return s
}

// worldJournal is what is recorded of a world, and what is not yet.
type worldJournal struct {
	saved     []byte // the state last recorded, encoded
	alerts    []Received
	forgotten []string
	causes    []Cause
}

func (j *worldJournal) received(k threadKey, a *alert.Alert, by string) {
	id := k.id()
	// A thread pruned and begun again before the record keeps its old
	// alerts (one write cannot delete and put under the same key): after
	// a restore they only mark their own versions as repeats.
	j.forgotten = slices.DeleteFunc(j.forgotten, func(f string) bool { return f == id })
	j.alerts = keepLast(j.alerts, Received{Thread: id, ID: keyOf(a).id(), Alert: a, By: by})
}

// accepted notes alert a of thread k, delivered by by: it is recorded,
// and it is a cause of the next apply.
func (w *world) accepted(k threadKey, a *alert.Alert, by string) {
	w.journal.received(k, a, by)
	w.note(Cause{Drill: w.drill, Thread: k.id(), Version: keyOf(a).id(), Kind: a.Kind, EventID: a.EventID, Serial: a.Serial,
		MsgType: a.MsgType, Status: a.Status, By: by, At: time.Now().UTC()})
}

// note keeps c for the next record and as a cause of the next apply.
func (w *world) note(c Cause) {
	w.causes = keepLast(w.causes, c)
	w.journal.causes = keepLast(w.journal.causes, c)
}

func (j *worldJournal) forget(k threadKey) {
	id := k.id()
	j.alerts = slices.DeleteFunc(j.alerts, func(r Received) bool { return r.Thread == id })
	if len(j.forgotten) < maxUnrecorded {
		j.forgotten = append(j.forgotten, id)
	}
}

// save records w's state if it changed since the last record (or alerts
// were accepted, threads forgotten) — with p.mu held.
func (p *Pipeline) save(w *world) error {
	if p.cfg.Journal == nil {
		return nil
	}
	st := w.state()
	enc, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("pipeline: encode state: %w", err)
	}
	j := &w.journal
	if bytes.Equal(enc, j.saved) && len(j.alerts) == 0 && len(j.forgotten) == 0 && len(j.causes) == 0 {
		return nil
	}
	for i := range j.alerts {
		j.alerts[i].Drill = w.drill
	}
	if err := p.cfg.Journal.Record(Record{World: st, Alerts: j.alerts, Forgotten: j.forgotten, Causes: j.causes}); err != nil {
		return fmt.Errorf("pipeline: record state: %w", err)
	}
	j.saved, j.alerts, j.forgotten, j.causes = enc, nil, nil, nil
	return nil
}

// state returns w's state to record.
func (w *world) state() WorldState {
	st := WorldState{Drill: w.drill, Threads: []ThreadState{}, Pending: maps.Clone(w.pending),
		Decisions: maps.Clone(w.decided), Applied: maps.Clone(w.applied), Watch: slices.Clone(w.watch),
		Causes: slices.Clone(w.causes)}
	for _, k := range slices.SortedFunc(maps.Keys(w.threads), func(a, b threadKey) int {
		return strings.Compare(a.id(), b.id())
	}) {
		th := w.threads[k]
		ts := ThreadState{Kind: k.kind, EventID: k.eventID, Latest: th.latest, Cancelled: th.cancelled,
			Current: th.current, Last: th.last}
		if len(th.wants) > 0 {
			ts.Wants = map[string]Want{}
			for site, x := range th.wants {
				ts.Wants[site] = Want{Level: x.level, Deadline: x.deadline, Hazard: x.hazard, Reason: x.reason}
			}
		}
		st.Threads = append(st.Threads, ts)
	}
	return st
}

// Restore replaces the pipeline's state with what its Journal recorded:
// the threads and the versions they received, held sites (still waiting
// for Approve), decisions and what the target applied, which is not
// applied again (the causes of what it did not apply yet are kept for
// it). Alerts this pipeline accepted but could not record (a
// follower's sources deliver too) are then taken again, as Submit would,
// and recorded with the next change. It does not call the target: the
// next Submit, decision or Retry records and carries out what changed
// since. A controller calls it when it
// becomes the leader, before it takes alerts. Without a Journal it does
// nothing.
func (p *Pipeline) Restore(ctx context.Context) error {
	if p.cfg.Journal == nil {
		return nil
	}
	snap, err := p.cfg.Journal.Load(ctx)
	if err != nil {
		return fmt.Errorf("pipeline: load state: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Alerts this pipeline took but could not record (it did not lead)
	// are taken again into the recorded state below.
	var unrecorded []Received
	for _, w := range p.worlds() {
		unrecorded = append(unrecorded, w.journal.alerts...)
	}
	for _, w := range p.worlds() {
		fresh := newWorld(w.drill, w.target)
		for _, ws := range snap.Worlds {
			if ws.Drill == w.drill {
				if err := fresh.restore(ws); err != nil {
					return err
				}
			}
		}
		*w = *fresh
	}
	byThread := map[string]*thread{}
	for _, w := range p.worlds() {
		for k, th := range w.threads {
			byThread[fmt.Sprint(w.drill, "/", k.id())] = th
		}
	}
	for _, r := range snap.Alerts {
		if th := byThread[fmt.Sprint(r.Drill, "/", r.Thread)]; th != nil && r.Alert != nil {
			th.seen[keyOf(r.Alert)] = true
		}
	}
	now := p.cfg.Clock.Now()
	for _, r := range unrecorded {
		// Refusals were made when the alert first came; a repeat of a
		// recorded version is a duplicate.
		_, _ = p.accept(r.Alert, now, r.By)
	}
	p.log.Info("alert pipeline restored", "threads", len(p.real.threads), "pending", len(p.real.pending),
		"applied", len(p.real.applied), "alerts", len(snap.Alerts), "unrecorded", len(unrecorded))
	return nil
}

// restore fills a fresh world from its recorded state.
func (w *world) restore(ws WorldState) error {
	for i, ts := range ws.Threads {
		if ts.Latest == nil {
			return fmt.Errorf("pipeline: recorded state: threads[%d] (%s event %q): latest is missing", i, ts.Kind, ts.EventID)
		}
		k := threadKey{ts.Kind, ts.EventID}
		th := &thread{key: k, latest: ts.Latest, seen: map[msgKey]bool{keyOf(ts.Latest): true}, cancelled: ts.Cancelled,
			current: ts.Current, last: ts.Last}
		if len(ts.Wants) > 0 {
			th.wants = map[string]want{}
			for site, x := range ts.Wants {
				th.wants[site] = want{level: x.Level, deadline: x.Deadline, hazard: x.Hazard, reason: x.Reason}
			}
		}
		w.threads[k] = th
	}
	maps.Copy(w.pending, ws.Pending)
	maps.Copy(w.decided, ws.Decisions)
	maps.Copy(w.applied, ws.Applied)
	w.watch = slices.Clone(ws.Watch)
	w.causes = slices.Clone(ws.Causes)
	enc, err := json.Marshal(w.state())
	if err != nil {
		return fmt.Errorf("pipeline: encode state: %w", err)
	}
	w.journal.saved = enc
	return nil
}

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PipelineWrite is one change of the alert pipeline's state in one world
// (its real federation or its drill copy).
type PipelineWrite struct {
	// World names the world ("real" or "drill"); State is its state,
	// JSON, replacing the one recorded.
	World string
	State json.RawMessage
	// Alerts are alerts accepted, JSON, by their id within the world
	// (thread and version: "kind/event/version"); a version recorded
	// again is overwritten.
	Alerts map[string]json.RawMessage
	// Forget are threads ("kind/event") whose alerts are deleted.
	Forget []string
	// Audit are audit entries of what the change records (alerts
	// accepted, decisions, actions carried out), written with it: each
	// once, however often the write is repeated.
	Audit []AuditEntry
	// Settled deletes the world's apply intent (PutApplyIntent): State
	// records its outcome.
	Settled bool
}

// MaxPipelineAlerts bounds the alerts and forgotten threads of one
// PipelineWrite, so that it is one transaction (atomic).
const MaxPipelineAlerts = maxTxnOps / 2

// MaxPipelineAudit bounds the audit entries of one PipelineWrite.
const MaxPipelineAudit = maxTxnOps - MaxPipelineAlerts - 2

// checkWorld refuses a world name that is empty or has a '/'.
func checkWorld(what, world string) error {
	if world == "" || strings.Contains(world, "/") {
		return fmt.Errorf("store: %s: world %q: a name without '/' is required", what, world)
	}
	return nil
}

// PutPipeline records a change of the alert pipeline's state, guarded by
// f, in one transaction.
func (s *Store) PutPipeline(ctx context.Context, f Fence, w PipelineWrite) error {
	if err := checkWorld("pipeline write", w.World); err != nil {
		return err
	}
	switch {
	case len(w.State) == 0:
		return fmt.Errorf("store: pipeline write: world %s: state is required", w.World)
	case len(w.Alerts)+len(w.Forget) > MaxPipelineAlerts:
		return fmt.Errorf("store: pipeline write: world %s: %d alerts and %d forgotten threads, more than %d in one write",
			w.World, len(w.Alerts), len(w.Forget), MaxPipelineAlerts)
	case len(w.Audit) > MaxPipelineAudit:
		return fmt.Errorf("store: pipeline write: world %s: %d audit entries, more than %d in one write", w.World, len(w.Audit), MaxPipelineAudit)
	}
	base := alertsKey + w.World + "/"
	kvs := make([]kv, 0, 2+len(w.Alerts)+len(w.Forget)+len(w.Audit))
	for _, t := range w.Forget {
		if t == "" {
			return fmt.Errorf("store: pipeline write: world %s: forget: empty thread", w.World)
		}
		kvs = append(kvs, kv{key: base + t + "/", prefix: true})
	}
	for id, a := range w.Alerts {
		if id == "" || len(a) == 0 {
			return fmt.Errorf("store: pipeline write: world %s: alert %q: id and value are required", w.World, id)
		}
		kvs = append(kvs, kv{key: base + id, val: a})
	}
	audit, err := auditKVs(w.Audit)
	if err != nil {
		return err
	}
	kvs = append(kvs, audit...)
	if w.Settled {
		kvs = append(kvs, kv{key: applyKey + w.World})
	}
	kvs = append(kvs, kv{key: pipelineKey + w.World, val: w.State})
	return s.write(ctx, f, kvs)
}

// PutApplyIntent records what the alert pipeline's target of world is
// about to do, guarded by f, before it acts (nil deletes it); a
// PipelineWrite with Settled deletes it with the outcome.
func (s *Store) PutApplyIntent(ctx context.Context, f Fence, world string, intent json.RawMessage) error {
	if err := checkWorld("apply intent", world); err != nil {
		return err
	}
	return s.write(ctx, f, []kv{{key: applyKey + world, val: intent}})
}

// ApplyIntents returns the apply intents recorded and not settled, by
// world.
func (s *Store) ApplyIntents(ctx context.Context) (map[string]json.RawMessage, error) {
	resp, err := s.c.Get(ctx, applyKey, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", applyKey, err)
	}
	out := make(map[string]json.RawMessage, len(resp.Kvs))
	for _, p := range resp.Kvs {
		out[string(p.Key[len(applyKey):])] = p.Value
	}
	return out, nil
}

// Pipeline returns the alert pipeline's recorded state: each world's
// state by name, and every recorded alert (JSON values, in key order).
func (s *Store) Pipeline(ctx context.Context) (map[string]json.RawMessage, []json.RawMessage, error) {
	states := map[string]json.RawMessage{}
	resp, err := s.c.Get(ctx, pipelineKey, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("store: list %s: %w", pipelineKey, err)
	}
	for _, p := range resp.Kvs {
		states[string(p.Key[len(pipelineKey):])] = p.Value
	}
	alerts, err := list[json.RawMessage](ctx, s, alertsKey)
	if err != nil {
		return nil, nil, err
	}
	return states, alerts, nil
}

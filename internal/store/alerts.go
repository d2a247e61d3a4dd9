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
}

// MaxPipelineAlerts bounds the alerts and forgotten threads of one
// PipelineWrite, so that it is one transaction (atomic).
const MaxPipelineAlerts = maxTxnOps / 2

// PutPipeline records a change of the alert pipeline's state, guarded by
// f, in one transaction.
func (s *Store) PutPipeline(ctx context.Context, f Fence, w PipelineWrite) error {
	switch {
	case w.World == "" || strings.Contains(w.World, "/"):
		return fmt.Errorf("store: pipeline write: world %q: a name without '/' is required", w.World)
	case len(w.State) == 0:
		return fmt.Errorf("store: pipeline write: world %s: state is required", w.World)
	case len(w.Alerts)+len(w.Forget) > MaxPipelineAlerts:
		return fmt.Errorf("store: pipeline write: world %s: %d alerts and %d forgotten threads, more than %d in one write",
			w.World, len(w.Alerts), len(w.Forget), MaxPipelineAlerts)
	}
	base := alertsKey + w.World + "/"
	kvs := make([]kv, 0, 1+len(w.Alerts)+len(w.Forget))
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
	kvs = append(kvs, kv{key: pipelineKey + w.World, val: w.State})
	return s.write(ctx, f, kvs)
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

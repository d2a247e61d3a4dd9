package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PutOperation writes op, guarded by f.
func (s *Store) PutOperation(ctx context.Context, f Fence, op *Operation) error {
	op.Updated = time.Now().UTC()
	p, err := jsonKV(opsKey+op.ID, op)
	if err != nil {
		return err
	}
	return s.write(ctx, f, []kv{p})
}

// Operation returns one operation.
func (s *Store) Operation(ctx context.Context, id string) (*Operation, error) {
	var op Operation
	if err := s.getJSON(ctx, opsKey+id, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// Operations lists operations, oldest first.
func (s *Store) Operations(ctx context.Context) ([]Operation, error) {
	return list[Operation](ctx, s, opsKey)
}

// PutSteps journals VM steps of operation id, guarded by f; a step whose
// state is VMMigrated also records the VM's new placement, atomically.
func (s *Store) PutSteps(ctx context.Context, f Fence, id string, steps ...VMStep) error {
	kvs := make([]kv, 0, len(steps))
	now := time.Now().UTC()
	for _, st := range steps {
		st.Updated = now
		p, err := jsonKV(stepsKey+id+"/"+st.VM, st)
		if err != nil {
			return err
		}
		kvs = append(kvs, p)
		if st.State == VMMigrated && st.To != "" {
			kvs = append(kvs, kv{key: placementKey + st.VM, val: []byte(st.To)})
		}
	}
	return s.write(ctx, f, kvs)
}

// Steps returns the journal of operation id, by VM name.
func (s *Store) Steps(ctx context.Context, id string) ([]VMStep, error) {
	return list[VMStep](ctx, s, stepsKey+id+"/")
}

// Placements returns the VM placements recorded by migrations (VM → host).
func (s *Store) Placements(ctx context.Context) (map[string]string, error) {
	resp, err := s.c.Get(ctx, placementKey, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list placements: %w", err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, p := range resp.Kvs {
		out[string(p.Key[len(placementKey):])] = string(p.Value)
	}
	return out, nil
}

// Watch streams changes to operations and steps from now on until ctx
// ends; the channel is closed then.
func (s *Store) Watch(ctx context.Context) <-chan Change {
	out := make(chan Change, 64)
	wch := s.c.Watch(clientv3.WithRequireLeader(ctx), Prefix, clientv3.WithPrefix())
	go func() {
		defer close(out)
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				c, ok := decodeChange(string(ev.Kv.Key), ev.Kv.Value)
				if !ok {
					continue
				}
				c.Revision = ev.Kv.ModRevision
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func decodeChange(key string, val []byte) (Change, bool) {
	var c Change
	switch {
	case len(key) > len(opsKey) && key[:len(opsKey)] == opsKey:
		var op Operation
		if json.Unmarshal(val, &op) != nil {
			return c, false
		}
		c.Operation, c.OperationID = &op, op.ID
	case len(key) > len(stepsKey) && key[:len(stepsKey)] == stepsKey:
		var st VMStep
		if json.Unmarshal(val, &st) != nil {
			return c, false
		}
		rest := key[len(stepsKey):]
		for i := range len(rest) {
			if rest[i] == '/' {
				c.OperationID = rest[:i]
				break
			}
		}
		c.Step = &st
	default:
		return c, false
	}
	return c, true
}

// Audit appends e to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	p, err := jsonKV(auditKeyAt(e.At, NewID("a")[len("a-")+len("20060102T150405.000-"):]), e)
	if err != nil {
		return err
	}
	return s.write(ctx, nil, []kv{p})
}

// auditKeyAt is the key of an audit entry made at, told apart from others
// of the same moment by suffix.
func auditKeyAt(at time.Time, suffix string) string {
	return fmt.Sprintf("%s%020d-%s", auditKey, at.UnixNano(), suffix)
}

// auditKVs are the audit entries es for a write that also records what
// they tell (the alert pipeline's): each under a key made of its time and
// content, so that writing it again overwrites it, and it is in the log
// once.
func auditKVs(es []AuditEntry) ([]kv, error) {
	out := make([]kv, 0, len(es))
	for _, e := range es {
		if e.At.IsZero() {
			return nil, fmt.Errorf("store: audit entry %s %s: its time is required", e.Method, e.Path)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("store: encode audit entry %s %s: %w", e.Method, e.Path, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, kv{key: auditKeyAt(e.At, hex.EncodeToString(sum[:4])), val: b})
	}
	return out, nil
}

// AuditLog returns the newest limit entries, oldest first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	es, err := list[AuditEntry](ctx, s, auditKey,
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es, nil
}

package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPipelineState: the alert pipeline's state and alerts are written
// by the leader only, a forgotten thread's alerts go, and bad writes are
// refused naming what is wrong.
func TestPipelineState(t *testing.T) {
	ctx, s, first := elected(t)
	w := PipelineWrite{World: "real", State: json.RawMessage(`{"n":1}`), Alerts: map[string]json.RawMessage{
		"eew/ev-1/1": json.RawMessage(`{"v":1}`), "eew/ev-1/2": json.RawMessage(`{"v":2}`), "eew/ev-2/1": json.RawMessage(`{"v":3}`)}}
	if err := s.PutPipeline(ctx, first, w); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPipeline(ctx, first, PipelineWrite{World: "real", State: json.RawMessage(`{"n":2}`), Forget: []string{"eew/ev-1"}}); err != nil {
		t.Fatal(err)
	}
	states, alerts, err := s.Pipeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(states["real"]) != `{"n":2}` || len(alerts) != 1 || string(alerts[0]) != `{"v":3}` {
		t.Fatalf("state %s, alerts %s; want n 2 and ev-2's alert only", states, alerts)
	}

	// A deposed leader writes nothing.
	second := handOver(ctx, t, s, first)
	if err := s.PutPipeline(ctx, first, PipelineWrite{World: "real", State: json.RawMessage(`{"n":3}`)}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's pipeline write: %v, want ErrNotLeader", err)
	}

	many := map[string]json.RawMessage{}
	for i := range MaxPipelineAlerts + 1 {
		many[strings.Repeat("x", i+1)] = json.RawMessage(`{}`)
	}
	for _, bad := range []struct {
		w    PipelineWrite
		want string
	}{
		{PipelineWrite{State: json.RawMessage(`{}`)}, "world"},
		{PipelineWrite{World: "a/b", State: json.RawMessage(`{}`)}, "world"},
		{PipelineWrite{World: "real"}, "state"},
		{PipelineWrite{World: "real", State: json.RawMessage(`{}`), Forget: []string{""}}, "forget"},
		{PipelineWrite{World: "real", State: json.RawMessage(`{}`), Alerts: map[string]json.RawMessage{"": json.RawMessage(`{}`)}}, "alert"},
		{PipelineWrite{World: "real", State: json.RawMessage(`{}`), Alerts: many}, "alerts"},
	} {
		if err := s.PutPipeline(ctx, second, bad.w); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("PutPipeline(%+v) = %v, want an error naming %s", bad.w.World, err, bad.want)
		}
	}
}

// TestApplyIntent: the leader records an apply intent before it acts; a
// pipeline write that settles it deletes it and writes its audit entry,
// which is in the log once however often it is written; a deposed leader
// records no intent.
func TestApplyIntent(t *testing.T) {
	ctx, s, first := elected(t)
	if err := s.PutApplyIntent(ctx, first, "real", json.RawMessage(`{"op":"op-1"}`)); err != nil {
		t.Fatal(err)
	}
	intents, err := s.ApplyIntents(ctx)
	if err != nil || len(intents) != 1 || string(intents["real"]) != `{"op":"op-1"}` {
		t.Fatalf("ApplyIntents = %s, %v; want real's", intents, err)
	}
	started := AuditEntry{At: time.Unix(10, 0).UTC(), Name: "pipeline:relay", Method: "EVACUATE", Path: "/v1/operations/op-1", Operation: "op-1"}
	settle := PipelineWrite{World: "real", State: json.RawMessage(`{}`), Settled: true, Audit: []AuditEntry{started}}
	for range 2 { // a write repeated (its answer lost) adds no entry
		if err := s.PutPipeline(ctx, first, settle); err != nil {
			t.Fatal(err)
		}
	}
	if intents, err := s.ApplyIntents(ctx); err != nil || len(intents) != 0 {
		t.Errorf("after the settling write: intents %s, %v; want none", intents, err)
	}
	es, err := s.AuditLog(ctx, 10)
	if err != nil || len(es) != 1 || es[0] != started {
		t.Errorf("audit log %+v, %v; want the start once", es, err)
	}

	second := handOver(ctx, t, s, first)
	if err := s.PutApplyIntent(ctx, first, "real", json.RawMessage(`{}`)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's intent: %v, want ErrNotLeader", err)
	}
	for _, bad := range []struct {
		w    PipelineWrite
		want string
	}{
		{PipelineWrite{World: "real", State: json.RawMessage(`{}`), Audit: []AuditEntry{{Method: "ALERT"}}}, "time"},
		{PipelineWrite{World: "real", State: json.RawMessage(`{}`), Audit: make([]AuditEntry, MaxPipelineAudit+1)}, "audit"},
	} {
		if err := s.PutPipeline(ctx, second, bad.w); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("PutPipeline with %d audit entries = %v, want an error naming %s", len(bad.w.Audit), err, bad.want)
		}
	}
	if err := s.PutApplyIntent(ctx, second, "a/b", nil); err == nil || !strings.Contains(err.Error(), "world") {
		t.Errorf("intent of world a/b: %v, want an error naming the world", err)
	}
}

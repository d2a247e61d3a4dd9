package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
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

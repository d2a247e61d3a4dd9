package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/client"
	"github.com/refuge-project/refuge/internal/store"
)

// fakeOperation serves an operation whose progress advances at each GET
// (0/4, 2/4 with 1 running, then succeeded 4/4) and an event stream that
// sends nothing.
func fakeOperation(t *testing.T) *client.Client {
	t.Helper()
	var mu sync.Mutex
	calls := 0
	steps := []store.Operation{
		{ID: "op-1", Kind: store.KindEvacuation, Status: store.OpRunning, Progress: store.Progress{Total: 4, Pending: 4}},
		{ID: "op-1", Kind: store.KindEvacuation, Status: store.OpRunning, Progress: store.Progress{Total: 4, Migrated: 2, Running: 1, Pending: 1}},
		{ID: "op-1", Kind: store.KindEvacuation, Status: store.OpSucceeded, Progress: store.Progress{Total: 4, Migrated: 4}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/operations/op-1", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		op := steps[min(calls, len(steps)-1)]
		calls++
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"id": op.ID, "kind": op.Kind, "status": op.Status, "progress": op.Progress, "vms": []any{}})
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWatchBars: on a terminal, operations watch draws mpb bars that end
// at the final counts.
func TestWatchBars(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // after the server has closed
	c := fakeOperation(t)
	var out bytes.Buffer
	ctx := context.Background()
	if err := watchWith(ctx, c, "op-1", time.Millisecond, showBars(ctx, &out, "op-1", true), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"op-1 succeeded: 0 running, 0 missed, 0 lost, 0 unsaved", "migrated 4/4 [", "decided  4/4 [", "] 100 %"} {
		if !strings.Contains(got, want) {
			t.Errorf("bars lack %q:\n%s", want, got)
		}
	}
}

// TestWatchJSONLines: --json prints one progress object per change and
// the final operation last.
func TestWatchJSONLines(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // after the server has closed
	c := fakeOperation(t)
	var out bytes.Buffer
	if err := watchOperation(context.Background(), c, "op-1", time.Millisecond, true, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out.String())
	}
	var p struct {
		Progress store.Progress `json:"progress"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &p); err != nil || p.Progress.Migrated != 2 {
		t.Errorf("second line %s: %v", lines[1], err)
	}
	var op store.Operation
	if err := json.Unmarshal([]byte(lines[2]), &op); err != nil || op.Status != store.OpSucceeded || op.Progress.Migrated != 4 {
		t.Errorf("last line %s: %v", lines[2], err)
	}
}

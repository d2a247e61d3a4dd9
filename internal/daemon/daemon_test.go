package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/controller/controllertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKeepApplying retries until its context ends, refusals included.
func TestKeepApplying(t *testing.T) {
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		KeepApplying(ctx, func() error { calls.Add(1); return errors.New("not the leader") }, time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	if !controllertest.Poll(10*time.Second, func() bool { return calls.Load() >= 3 }) {
		t.Errorf("%d retries", calls.Load())
	}
	cancel()
	<-done
}

// TestSources: sources are built and checked before a run; a spec that
// cannot work is refused naming it; a source that fails while running is
// reported once.
func TestSources(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		specs []string
		want  string
	}{
		{[]string{"file:" + filepath.Join(dir, "none")}, `source "file:`},
		{[]string{"gopher:x"}, "gopher"},
		{[]string{"webhook:127.0.0.1:0"}, "relay secrets"},
	} {
		if _, err := Sources(SourceConfig{Specs: tc.specs}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.specs, err, tc.want)
		}
	}
	// A receiver whose address is taken ends at once: reported once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var failed []string
	srcs, err := Sources(SourceConfig{Specs: []string{"webhook:" + ln.Addr().String()}, Secrets: map[string][]byte{"r": []byte("0123456789abcdef-secret")},
		OnFailed: func(name string, err error) { failed = append(failed, name+": "+err.Error()) }})
	if err != nil || len(srcs) != 1 {
		t.Fatalf("sources %v, %v", srcs, err)
	}
	if err := srcs[0].Run(context.Background(), func(context.Context, *alert.Alert) error { return nil }); err == nil {
		t.Fatal("a receiver on a taken address ran")
	}
	if len(failed) != 1 || !strings.Contains(failed[0], "address already in use") {
		t.Errorf("reported %q", failed)
	}
}

package alertsource

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector is a Sink that records what it is given.
type collector struct {
	mu     sync.Mutex
	alerts []*alert.Alert
	errs   []error
	reject func(*alert.Alert) error
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1000)} }

func (c *collector) sink(_ context.Context, a *alert.Alert) error {
	c.mu.Lock()
	defer func() { c.notify <- struct{}{} }()
	defer c.mu.Unlock()
	if c.reject != nil {
		if err := c.reject(a); err != nil {
			return err
		}
	}
	c.alerts = append(c.alerts, a)
	return nil
}

func (c *collector) onError(err error) {
	c.mu.Lock()
	defer func() { c.notify <- struct{}{} }()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

func (c *collector) snapshot() ([]*alert.Alert, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*alert.Alert(nil), c.alerts...), append([]error(nil), c.errs...)
}

// waitFor waits until cond holds on the collected alerts and errors, or
// fails the test after a deadline.
func (c *collector) waitFor(t *testing.T, what string, cond func(alerts []*alert.Alert, errs []error) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if cond(c.snapshot()) {
			return
		}
		select {
		case <-c.notify:
		case <-deadline:
			a, e := c.snapshot()
			t.Fatalf("timed out waiting for %s: %d alerts, errors %v", what, len(a), e)
		}
	}
}

func fixture(t *testing.T, rel string) []byte { return alerttest.Fixture(t, rel) }

// run starts src in the background and returns a stop function that
// cancels it and returns its error.
func run(t *testing.T, src Source, sink Sink) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("source did not stop")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

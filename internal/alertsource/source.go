// Package alertsource brings alerts into refuge: HTTP pollers for Atom feeds
// (JMA's feeds list links to XML documents) and USGS GeoJSON feeds, with
// conditional GET and exponential back-off; a P2PQuake WebSocket client
// that reconnects; a file/directory source for operators and drills; and
// the signed relay webhook receiver (internal/alert/webhook) served on an
// address. Every source parses what it receives with the alert parsers
// (internal/alert/formats), stamps ReceivedAt, and hands each alert to a
// Sink; bad documents are logged and reported, never passed on.
package alertsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	_ "github.com/refuge-project/refuge/internal/alert/formats" // every parser
	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/clock"
)

// Sink takes one parsed alert. It has the signature of the webhook
// receiver's sink. An error wrapping ErrRejected refuses the alert itself
// (a cancellation for an unknown event); sources log it and go on.
type Sink func(ctx context.Context, a *alert.Alert) error

// ErrRejected marks a Sink error as a refusal of the alert (it is the
// webhook package's, so that the relay receiver answers 422).
var ErrRejected = webhook.ErrRejected

// Source produces alerts until its context ends.
type Source interface {
	// Name says what the source is ("jma-atom https://…").
	Name() string
	// Run delivers alerts to sink until ctx is done, then returns
	// ctx.Err(), or another error if the source cannot work at all
	// (a listen address in use).
	Run(ctx context.Context, sink Sink) error
}

// Checker is a Source that can check, before it runs, what would stop it
// from working at all (a file source's path, a receiver's address), so that
// a command can refuse a mistyped source before it starts anything.
type Checker interface {
	Source
	Check() error
}

// Common holds what every source needs; its zero value works (wall clock,
// no logging).
type Common struct {
	// Clock stamps ReceivedAt and times polls and back-off (the wall
	// clock if nil).
	Clock clock.Clock
	// Logger receives the source's log (nothing if nil).
	Logger *slog.Logger
	// OnError, if set, is told about every document refused and every
	// failure to fetch (the log then has them at level Info only).
	OnError func(error)
}

func (c *Common) clock() clock.Clock {
	if c.Clock == nil {
		return clock.Real{}
	}
	return c.Clock
}

func (c *Common) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// fail logs and reports an error. With OnError set the error is logged at
// level Info: whoever set OnError shows it, and a warning too would show
// it twice.
func (c *Common) fail(source string, err error) {
	if c.OnError == nil {
		c.logger().Warn("alert source", "source", source, "error", err)
		return
	}
	c.logger().Info("alert source", "source", source, "error", err)
	c.OnError(fmt.Errorf("%s: %w", source, err))
}

// deliver stamps the alerts with the time of receipt and passes them to
// the sink, logging refusals. It returns ctx's error if ctx ended.
func (c *Common) deliver(ctx context.Context, source, what string, alerts []*alert.Alert, sink Sink) error {
	now := c.clock().Now()
	for _, a := range alerts {
		if a.ReceivedAt.IsZero() {
			a.ReceivedAt = now
		}
		c.logger().Info("alert received", "source", source, "from", what, "format", a.Format, "product", a.Product,
			"event", a.EventID, "serial", a.Serial, "msg_type", a.MsgType, "status", a.Status)
		if err := sink(ctx, a); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.fail(source, fmt.Errorf("%s: event %s: %w", what, a.EventID, err))
		}
	}
	return nil
}

// sleep waits d on clk, or until ctx is done.
func sleep(ctx context.Context, clk clock.Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fired := make(chan struct{})
	t := clk.AfterFunc(d, func() { close(fired) })
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-fired:
		return nil
	}
}

// isCanceled reports whether err only says that ctx ended.
func isCanceled(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctx.Err()))
}

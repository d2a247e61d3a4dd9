package alertsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/refuge-project/refuge/internal/alert/webhook"
)

// Webhook serves the signed relay receiver (webhook.Handler) on an
// address: phone and relay apps POST alerts to it (any path).
type Webhook struct {
	Common
	// Addr is the listen address ("127.0.0.1:8443", ":0").
	Addr string
	// Config configures the handler; Secret is required. Its Logger
	// defaults to the Common one; its Clock does not: signatures carry
	// wall-clock timestamps, so the window is checked on the wall clock
	// unless Config.Clock says otherwise (a simulation's accelerated
	// clock would refuse every request).
	Config webhook.Config
	// OnListen, if set, is told the address listened on (useful with
	// port 0).
	OnListen func(net.Addr)
}

// Name implements Source.
func (s *Webhook) Name() string { return "webhook " + s.Addr }

// Check implements Checker: the address must resolve. (Whether it is
// free shows when Run listens.)
func (s *Webhook) Check() error {
	if _, err := net.ResolveTCPAddr("tcp", s.Addr); err != nil {
		return fmt.Errorf("listen address %q: %w", s.Addr, err)
	}
	return nil
}

// Run implements Source: it serves until ctx ends, then shuts the server
// down (waiting up to 5 s for requests in progress).
func (s *Webhook) Run(ctx context.Context, sink Sink) error {
	cfg := s.Config
	if cfg.Logger == nil {
		cfg.Logger = s.Logger
	}
	h, err := webhook.NewHandler(cfg, webhook.Sink(sink))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	s.logger().Info("alert source listening", "source", s.Name(), "addr", ln.Addr().String())
	if s.OnListen != nil {
		s.OnListen(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

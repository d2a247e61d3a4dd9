package alertsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/refuge-project/refuge/internal/alert"
)

// P2PQuakeURL is P2PQuake's public WebSocket API (JSON API v2).
const P2PQuakeURL = "wss://api.p2pquake.net/v2/ws"

// P2PQuakeCodes are the record codes that carry alerts (551 earthquake
// information, 552 tsunami forecast, 554 EEW detection, 556 EEW); the
// stream's other records (555 peers, 561 user reports, 9611 their
// evaluation) are skipped.
var P2PQuakeCodes = []int{551, 552, 554, 556}

// P2PQuake receives P2PQuake's WebSocket stream: one JSON record per
// message. It reconnects with back-off when the connection fails or
// closes; a connection that delivered a message resets the back-off. It
// gives up after PermanentFailures connections in a row refused for good
// (an HTTP 4xx answer, a certificate that does not verify).
type P2PQuake struct {
	Common
	// URL is the WebSocket address (P2PQuakeURL if empty).
	URL    string
	Client *http.Client
	// Backoff between reconnections (NewBackoff(0, 0, 3) if nil).
	Backoff *Backoff
	// OnConnect, if set, is called after each successful connection
	// (tests and status displays).
	OnConnect func()
}

// MaxMessageBytes bounds one WebSocket message.
const MaxMessageBytes = 1 << 20

// Name implements Source.
func (s *P2PQuake) Name() string { return "p2pquake " + s.url() }

func (s *P2PQuake) url() string {
	if s.URL == "" {
		return P2PQuakeURL
	}
	return s.URL
}

// Run implements Source.
func (s *P2PQuake) Run(ctx context.Context, sink Sink) error {
	if s.Backoff == nil {
		s.Backoff = NewBackoff(0, 0, 3)
	}
	if err := checkURL(s.url(), streamSchemes); err != nil {
		return err
	}
	var permanent giveUp
	for {
		err := s.session(ctx, sink)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fatal := permanent.check(err); fatal != nil {
			return fatal
		}
		wait := s.Backoff.Next()
		s.fail(s.Name(), fmt.Errorf("%w (reconnecting in %s)", err, wait.Round(time.Millisecond)))
		if err := sleep(ctx, s.clock(), wait); err != nil {
			return err
		}
	}
}

// session runs one connection until it fails.
func (s *P2PQuake) session(ctx context.Context, sink Sink) error {
	conn, resp, err := websocket.Dial(ctx, s.url(), &websocket.DialOptions{
		HTTPClient: s.Client,
		HTTPHeader: http.Header{"User-Agent": {UserAgent}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// The server answered, but not with a WebSocket.
			err = &HTTPStatusError{URL: s.url(), Status: resp.StatusCode}
		}
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(MaxMessageBytes)
	s.logger().Info("alert source connected", "source", s.Name())
	if s.OnConnect != nil {
		s.OnConnect()
	}
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return fmt.Errorf("connection closed by the server: %v %q", ce.Code, ce.Reason)
			}
			return err
		}
		s.Backoff.Reset()
		if typ != websocket.MessageText {
			s.fail(s.Name(), errors.New("binary message ignored"))
			continue
		}
		if err := s.handle(ctx, data, sink); err != nil {
			return err
		}
	}
}

// handle parses one message: a record, or an array of records (as the
// history API returns them).
func (s *P2PQuake) handle(ctx context.Context, data []byte, sink Sink) error {
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		var records []json.RawMessage
		if err := json.Unmarshal(trimmed, &records); err != nil {
			s.fail(s.Name(), fmt.Errorf("message is not a JSON array of records: %w", err))
			return nil
		}
		for _, r := range records {
			if err := s.record(ctx, r, sink); err != nil {
				return err
			}
		}
		return nil
	}
	return s.record(ctx, data, sink)
}

// record parses one record and delivers its alerts; records of other
// codes are skipped, bad ones reported.
func (s *P2PQuake) record(ctx context.Context, data []byte, sink Sink) error {
	var head struct {
		Code int    `json:"code"`
		ID   string `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		s.fail(s.Name(), fmt.Errorf("message is not a JSON record: %w", err))
		return nil
	}
	if !slices.Contains(P2PQuakeCodes, head.Code) {
		s.logger().Debug("p2pquake record skipped", "code", head.Code, "id", head.ID)
		return nil
	}
	alerts, err := alert.ParseAllFormat("p2pquake", data)
	if err != nil {
		s.fail(s.Name(), fmt.Errorf("record %s (code %d): %w", head.ID, head.Code, err))
		return nil
	}
	return s.deliver(ctx, s.Name(), "record "+head.ID, alerts, sink)
}

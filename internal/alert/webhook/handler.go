// Package webhook is the signed relay protocol by which phone and relay
// apps forward alerts to refuge: a JSON Body POSTed with the
// X-Refuge-Relay, X-Refuge-Timestamp and X-Refuge-Signature headers
// (HMAC-SHA256 with the relay's secret over timestamp + "." + body). Handler
// receives it; Sign and NewRequest make it. See docs/alerts.md for the
// protocol.
//
// The handler refuses a request whose timestamp is outside the window
// (±5 minutes by default) or that it has accepted before within the window
// (replay), compares signatures in constant time, bounds the body size, and
// answers every bad request with a 4xx status and a JSON error (5xx only
// when the sink fails or the replay cache is full).
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/clock"
)

// Defaults of Config.
const (
	DefaultWindow          = 5 * time.Minute
	DefaultMaxBodyBytes    = 1 << 20
	DefaultReplayCacheSize = 1 << 16
)

// Config configures a Handler.
type Config struct {
	// Secret returns the secret of a relay, or false for an unknown relay
	// (required). Secrets must be at least MinSecretLen bytes.
	Secret func(relayID string) ([]byte, bool)
	// Window is how far a request's timestamp may be from the clock, either
	// way (DefaultWindow if zero).
	Window time.Duration
	// MaxBodyBytes bounds the request body (DefaultMaxBodyBytes if zero).
	MaxBodyBytes int64
	// ReplayCacheSize bounds how many accepted requests are remembered;
	// when it is full, requests are refused with 503 until entries expire
	// (DefaultReplayCacheSize if zero).
	ReplayCacheSize int
	// Clock tells the time (the wall clock if nil).
	Clock clock.Clock
	// Metrics records requests by status (nothing if nil).
	Metrics *Metrics
	// Logger logs refused requests at Info and sink failures at Warn
	// (nothing if nil).
	Logger *slog.Logger
}

// StaticSecrets returns a Config.Secret for a fixed map of relay ids to
// secrets, after checking every secret's length.
func StaticSecrets(secrets map[string][]byte) (func(string) ([]byte, bool), error) {
	m := make(map[string][]byte, len(secrets))
	for id, s := range secrets {
		if !relayIDPattern.MatchString(id) {
			return nil, fmt.Errorf("relay id %q: want 1-64 letters, digits, '.', '_' or '-'", id)
		}
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("relay %s: secret of %d bytes, need at least %d", id, len(s), MinSecretLen)
		}
		m[id] = append([]byte(nil), s...)
	}
	return func(id string) ([]byte, bool) { s, ok := m[id]; return s, ok }, nil
}

// Sink takes a received alert. It returns an error wrapping ErrRejected to
// refuse the alert (422, e.g. a cancel for an unknown event), or another
// error when it failed (500; the relay may retry the same request).
type Sink func(ctx context.Context, a *alert.Alert) error

// ErrRejected marks a Sink error as a refusal of the alert itself.
var ErrRejected = errors.New("alert rejected")

// Handler is the relay receiver, an http.Handler for POST requests.
type Handler struct {
	cfg    Config
	sink   Sink
	replay *replayCache
}

// NewHandler returns a Handler passing each accepted alert to sink.
func NewHandler(cfg Config, sink Sink) (*Handler, error) {
	if cfg.Secret == nil || sink == nil {
		return nil, errors.New("webhook: NewHandler needs Config.Secret and a sink")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplayCacheSize <= 0 {
		cfg.ReplayCacheSize = DefaultReplayCacheSize
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, sink: sink, replay: newReplayCache(cfg.ReplayCacheSize)}, nil
}

type relayKey struct{}

// RelayFromContext returns the id of the relay that sent the alert a Sink
// is given.
func RelayFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(relayKey{}).(string)
	return id, ok
}

// refusal is a request refused with an HTTP status.
type refusal struct {
	status int
	code   string // machine-readable reason
	msg    string
}

func refuse(status int, code, format string, args ...any) *refusal {
	return &refusal{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP receives one relay request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	accepted, rf := h.serve(w, r)
	if rf != nil {
		h.cfg.Logger.Info("relay request refused", "status", rf.status, "code", rf.code, "error", rf.msg,
			"relay", r.Header.Get(HeaderRelay), "remote", r.RemoteAddr)
		h.cfg.Metrics.observe(rf.status)
		if rf.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		writeJSON(w, rf.status, map[string]string{"error": rf.msg, "code": rf.code})
		return
	}
	h.cfg.Metrics.observe(http.StatusAccepted)
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "alerts": accepted})
}

// acceptedAlert is what the 202 answer says of each alert.
type acceptedAlert struct {
	Format  string        `json:"format"`
	EventID string        `json:"event_id"`
	Kind    alert.Kind    `json:"kind"`
	MsgType alert.MsgType `json:"msg_type"`
	Digest  string        `json:"digest"`
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) ([]acceptedAlert, *refusal) {
	if r.Method != http.MethodPost {
		return nil, refuse(http.StatusMethodNotAllowed, "method_not_allowed", "method %s, want POST", r.Method)
	}
	if rf := checkContentType(r.Header.Get("Content-Type")); rf != nil {
		return nil, rf
	}
	relayID := r.Header.Get(HeaderRelay)
	secret, ok := h.cfg.Secret(relayID)
	if relayID == "" || !ok || len(secret) < MinSecretLen {
		return nil, refuse(http.StatusUnauthorized, "unknown_relay", "unknown relay %q (header %s)", relayID, HeaderRelay)
	}
	tsHeader := r.Header.Get(HeaderTimestamp)
	ts, rf := h.checkTimestamp(tsHeader)
	if rf != nil {
		return nil, rf
	}
	body, rf := h.readBody(w, r)
	if rf != nil {
		return nil, rf
	}
	sig := r.Header.Get(HeaderSignature)
	if !Verify(secret, body, tsHeader, sig) {
		return nil, refuse(http.StatusUnauthorized, "bad_signature", "%s does not sign the timestamp and body with relay %s's secret", HeaderSignature, relayID)
	}
	key := relayID + " " + sig
	switch h.replay.add(key, ts.Add(h.cfg.Window), h.cfg.Clock.Now()) {
	case replayed:
		return nil, refuse(http.StatusConflict, "replay", "this request was already received (same relay and signature)")
	case full:
		return nil, refuse(http.StatusServiceUnavailable, "busy", "replay cache full; retry later")
	}
	b, alerts, err := ParseBody(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_body", "%v", err)
	}
	if b.RelayID != relayID {
		return nil, refuse(http.StatusBadRequest, "bad_body", "relay_id %q does not match %s %q", b.RelayID, HeaderRelay, relayID)
	}
	return h.deliver(r.Context(), relayID, key, alerts)
}

func checkContentType(ct string) *refusal {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return refuse(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q, want application/json", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return refuse(http.StatusUnsupportedMediaType, "unsupported_media_type", "charset %q, want utf-8", cs)
	}
	return nil
}

// checkTimestamp parses the timestamp header and checks it against the
// window.
func (h *Handler) checkTimestamp(s string) (time.Time, *refusal) {
	if s == "" || len(s) > 12 || strings.Trim(s, "0123456789") != "" {
		return time.Time{}, refuse(http.StatusBadRequest, "bad_timestamp", "%s %q is not Unix seconds", HeaderTimestamp, s)
	}
	secs, _ := strconv.ParseInt(s, 10, 64) // at most 12 digits: cannot overflow
	ts := time.Unix(secs, 0)
	now := h.cfg.Clock.Now()
	if d := now.Sub(ts); d > h.cfg.Window || d < -h.cfg.Window {
		return time.Time{}, refuse(http.StatusUnauthorized, "stale_timestamp", "%s %s is %s from the server's clock; the window is ±%s",
			HeaderTimestamp, s, d.Abs().Round(time.Second), h.cfg.Window)
	}
	return ts, nil
}

func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *refusal) {
	if r.ContentLength > h.cfg.MaxBodyBytes {
		return nil, refuse(http.StatusRequestEntityTooLarge, "too_large", "body of %d bytes; the limit is %d", r.ContentLength, h.cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, refuse(http.StatusRequestEntityTooLarge, "too_large", "body longer than the limit of %d bytes", h.cfg.MaxBodyBytes)
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "bad_body", "reading the body: %v", err)
	}
	return body, nil
}

// deliver passes the alerts to the sink. A sink failure forgets the
// request, so that the relay may retry it.
func (h *Handler) deliver(ctx context.Context, relayID, key string, alerts []*alert.Alert) ([]acceptedAlert, *refusal) {
	ctx = context.WithValue(ctx, relayKey{}, relayID)
	now := h.cfg.Clock.Now()
	out := make([]acceptedAlert, 0, len(alerts))
	for _, a := range alerts {
		a.ReceivedAt = now
		if err := h.sink(ctx, a); err != nil {
			if errors.Is(err, ErrRejected) {
				return nil, refuse(http.StatusUnprocessableEntity, "rejected", "%v", err)
			}
			h.replay.forget(key)
			h.cfg.Logger.Warn("relay alert sink failed", "relay", relayID, "event", a.EventID, "error", err)
			return nil, refuse(http.StatusInternalServerError, "sink_failed", "the alert could not be processed; retry")
		}
		out = append(out, acceptedAlert{Format: a.Format, EventID: a.EventID, Kind: a.Kind, MsgType: a.MsgType, Digest: a.Digest})
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

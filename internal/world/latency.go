package world

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
)

// LatencyOptions configure MeasureAlertLatency.
type LatencyOptions struct {
	Federation *model.Federation
	// Alert returns the relay body fields of run i (without version,
	// relay_id and nonce); it must make the pipeline evacuate a site.
	// Nil uses an EEW of a magnitude 8 earthquake off Cape Muroto, issued
	// now, which threatens the nankai-trough example's Kochi site.
	Alert func(i int, now time.Time) map[string]any
	// Runs is the number of alerts measured (100 if zero).
	Runs int
}

// Latency is the outcome of MeasureAlertLatency.
type Latency struct {
	Runs int `json:"runs"`
	// Alert is the time from sending a relay request over loopback to the
	// simulated driver starting the first migration of the evacuation it
	// triggers; HTTP the time of a bare loopback request to a handler that
	// answers at once, measured in the same run.
	AlertP50 time.Duration `json:"alert_p50"`
	AlertP99 time.Duration `json:"alert_p99"`
	AlertMax time.Duration `json:"alert_max"`
	HTTPP50  time.Duration `json:"http_p50"`
	HTTPP99  time.Duration `json:"http_p99"`
	// RatioP50 and RatioP99 are Alert over HTTP.
	RatioP50 float64 `json:"ratio_p50"`
	RatioP99 float64 `json:"ratio_p99"`
}

const benchRelay = "bench-relay"

var benchSecret = []byte("refuge-bench-relay-secret-0123456789")

// NankaiEEWFields is a relay body's alert fields for an earthquake early
// warning of a magnitude 8 earthquake off Cape Muroto (32.8 N 134.2 E,
// 20 km deep) that started 8 s before now.
func NankaiEEWFields(eventID string, now time.Time) map[string]any {
	return map[string]any{
		"event_id": eventID, "serial": 1, "kind": "eew", "status": "actual", "msg_type": "alert",
		"issued_at": now.UTC().Format(time.RFC3339Nano), "origin_time": now.Add(-8 * time.Second).UTC().Format(time.RFC3339Nano),
		"hypocenter": map[string]any{"lat": 32.8, "lon": 134.2, "depth_km": 20, "name": "室戸岬沖"},
		"magnitude":  map[string]any{"value": 8.0, "type": "Mj"},
	}
}

// MeasureAlertLatency measures, Runs times, how long an alert takes from
// a relay's request to the first migration on the simulated driver: each
// run builds a fresh simulated federation (real-time clock), pipeline and
// relay receiver on 127.0.0.1, sends one signed relay request on a new
// connection and waits for the executor's first start. Set-up is not
// timed. A bare loopback HTTP round trip (new connection, same body) is
// measured as many times for comparison.
func MeasureAlertLatency(ctx context.Context, o LatencyOptions) (*Latency, error) {
	if o.Federation == nil {
		return nil, errors.New("world: LatencyOptions.Federation is required")
	}
	if o.Runs <= 0 {
		o.Runs = 100
	}
	if o.Alert == nil {
		o.Alert = func(i int, now time.Time) map[string]any { return NankaiEEWFields(fmt.Sprintf("bench-%d", i), now) }
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	alertTimes := make([]time.Duration, 0, o.Runs)
	httpTimes := make([]time.Duration, 0, o.Runs)
	for i := range o.Runs {
		d, err := alertOnce(ctx, o, i, client)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i, err)
		}
		alertTimes = append(alertTimes, d)
	}
	base, err := bareRoundTrips(ctx, o, client)
	if err != nil {
		return nil, err
	}
	httpTimes = append(httpTimes, base...)
	l := &Latency{Runs: o.Runs}
	l.AlertP50, l.AlertP99, l.AlertMax = percentile(alertTimes, 50), percentile(alertTimes, 99), slices.Max(alertTimes)
	l.HTTPP50, l.HTTPP99 = percentile(httpTimes, 50), percentile(httpTimes, 99)
	l.RatioP50 = float64(l.AlertP50) / float64(l.HTTPP50)
	l.RatioP99 = float64(l.AlertP99) / float64(l.HTTPP99)
	return l, nil
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank-1, 0)]
}

func relayBody(o LatencyOptions, i int, now time.Time) ([]byte, error) {
	fields := o.Alert(i, now)
	fields["version"], fields["relay_id"], fields["nonce"] = webhook.BodyVersion, benchRelay, fmt.Sprint(i)
	return json.Marshal(fields)
}

func alertOnce(ctx context.Context, o LatencyOptions, i int, client *http.Client) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := make(chan time.Time, 1)
	w, err := NewSim(SimConfig{Federation: o.Federation, OnEvent: func(_ time.Time, ev executor.Event) {
		if ev.Kind == executor.EvStart {
			select {
			case started <- time.Now():
			default:
			}
		}
	}})
	if err != nil {
		return 0, err
	}
	p, err := pipeline.New(pipeline.Config{Federation: o.Federation, Target: w.Target(), Clock: w.PipelineClock()})
	if err != nil {
		return 0, err
	}
	secrets, err := webhook.StaticSecrets(map[string][]byte{benchRelay: benchSecret})
	if err != nil {
		return 0, err
	}
	addrs := make(chan net.Addr, 1)
	src := &alertsource.Webhook{Addr: "127.0.0.1:0", Config: webhook.Config{Secret: secrets}, OnListen: func(a net.Addr) { addrs <- a }}
	errs := make(chan error, 2)
	go func() { errs <- w.Run(ctx) }()
	go func() { errs <- p.Run(ctx, src) }()
	defer func() {
		cancel()
		<-errs
		<-errs
	}()
	var addr net.Addr
	select {
	case addr = <-addrs:
	case err := <-errs:
		return 0, fmt.Errorf("relay receiver: %w", err)
	}
	body, err := relayBody(o, i, time.Now())
	if err != nil {
		return 0, err
	}
	req, err := webhook.NewRequest(ctx, "http://"+addr.String()+"/", benchRelay, benchSecret, body, time.Now())
	if err != nil {
		return 0, err
	}
	// Collect the set-up's garbage (a whole simulated federation per run)
	// now, so that the timed path pays only for its own.
	runtime.GC()
	sent := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("relay receiver answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	select {
	case at := <-started:
		return at.Sub(sent), nil
	case <-time.After(10 * time.Second):
		return 0, errors.New("no migration started within 10 s of the alert")
	}
}

// bareRoundTrips measures loopback requests of the same size to a handler
// that reads the body and answers 202 at once.
func bareRoundTrips(ctx context.Context, o LatencyOptions, client *http.Client) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	out := make([]time.Duration, 0, o.Runs)
	for i := range o.Runs {
		body, err := relayBody(o, i, time.Now())
		if err != nil {
			return nil, err
		}
		req, err := webhook.NewRequest(ctx, "http://"+ln.Addr().String()+"/", benchRelay, benchSecret, body, time.Now())
		if err != nil {
			return nil, err
		}
		sent := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(sent))
	}
	return out, nil
}

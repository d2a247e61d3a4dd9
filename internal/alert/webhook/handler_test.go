package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	_ "github.com/refuge-project/refuge/internal/alert/formats"
	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const relayID = "kochi-phone-1"

var secret = []byte("0123456789abcdef-secret")

// fakeClock is a clock the test sets by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
func (c *fakeClock) AfterFunc(time.Duration, func()) clock.Timer {
	panic("the relay handler sets no timers")
}

// recorder is a Sink that records what it is given and fails on demand.
type recorder struct {
	mu     sync.Mutex
	alerts []*alert.Alert
	relays []string
	fail   error
}

func (r *recorder) sink(ctx context.Context, a *alert.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	id, _ := webhook.RelayFromContext(ctx)
	r.alerts, r.relays = append(r.alerts, a), append(r.relays, id)
	return nil
}

func (r *recorder) setFail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }

type harness struct {
	t     *testing.T
	srv   *httptest.Server
	clock *fakeClock
	rec   *recorder
}

func newHarness(t *testing.T, cfg webhook.Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: &fakeClock{now: time.Unix(1713363299, 0)}, rec: &recorder{}}
	if cfg.Secret == nil {
		var err error
		if cfg.Secret, err = webhook.StaticSecrets(map[string][]byte{relayID: secret}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Clock = h.clock
	handler, err := webhook.NewHandler(cfg, h.rec.sink)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	return h
}

// signed returns a request signed now by the relay.
func (h *harness) signed(body []byte) *http.Request {
	h.t.Helper()
	req, err := webhook.NewRequest(context.Background(), h.srv.URL, relayID, secret, body, h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return req
}

// answer is a decoded response.
type answer struct {
	status int
	Error  string `json:"error"`
	Code   string `json:"code"`
	Status string `json:"status"`
	Alerts []struct {
		Format  string `json:"format"`
		EventID string `json:"event_id"`
		Digest  string `json:"digest"`
	} `json:"alerts"`
}

func (h *harness) do(req *http.Request) answer {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("answer has Content-Type %q", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		h.t.Fatalf("answer is not JSON: %v", err)
	}
	a.status = resp.StatusCode
	if a.status >= 400 && (a.Error == "" || a.Code == "") {
		h.t.Fatalf("refusal %d without error and code: %+v", a.status, a)
	}
	return a
}

func (h *harness) expect(req *http.Request, status int, code string) answer {
	h.t.Helper()
	a := h.do(req)
	if a.status != status || a.Code != code {
		h.t.Fatalf("got %d %s (%s), want %d %s", a.status, a.Code, a.Error, status, code)
	}
	return a
}

func fieldBody(t *testing.T, extra string) []byte {
	t.Helper()
	return []byte(`{"version":1,"relay_id":"` + relayID + `","event_id":"20240417231454","serial":3,"kind":"eew","status":"actual",` +
		`"msg_type":"update","issued_at":"2024-04-17T23:15:01+09:00","hypocenter":{"lat":33.2,"lon":132.4,"depth_km":30},` +
		`"magnitude":{"value":6.1,"type":"Mj"},"max_intensity":"5+","areas":[{"name":"高知県西部","codes":[{"scheme":"jma-seismic-area","value":"632"}],"intensity":"5-"}]` +
		extra + `}`)
}

func documentBody(t *testing.T, doc []byte) []byte {
	t.Helper()
	b, err := json.Marshal(webhook.Body{Version: 1, RelayID: relayID, Document: string(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAcceptsFieldsAndDocuments(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	a := h.expect(h.signed(fieldBody(t, "")), http.StatusAccepted, "")
	if a.Status != "accepted" || len(a.Alerts) != 1 || a.Alerts[0].Format != "webhook" || a.Alerts[0].EventID != "20240417231454" {
		t.Fatalf("answer %+v", a)
	}
	doc := alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	a = h.expect(h.signed(documentBody(t, doc)), http.StatusAccepted, "")
	if len(a.Alerts) != 1 || a.Alerts[0].Format != "jma" || a.Alerts[0].Digest != alert.Digest(doc) {
		t.Fatalf("answer %+v", a)
	}
	feed := alerttest.Fixture(t, "usgs/usgs_significant_month_20130726.geojson")
	if a = h.expect(h.signed(documentBody(t, feed)), http.StatusAccepted, ""); len(a.Alerts) != 6 {
		t.Fatalf("a relayed feed gave %d alerts", len(a.Alerts))
	}
	rec := h.rec
	if len(rec.alerts) != 8 {
		t.Fatalf("sink got %d alerts", len(rec.alerts))
	}
	first := rec.alerts[0]
	if first.Serial != 3 || first.MsgType != alert.MsgUpdate || first.MaxIntensity != alert.Intensity5Upper ||
		first.Issuer != "relay:"+relayID || !first.ReceivedAt.Equal(h.clock.Now()) || rec.relays[0] != relayID {
		t.Fatalf("sink got %+v from %q", first, rec.relays[0])
	}
	if rec.alerts[1].Product != "VXSE43" || rec.alerts[1].Hypocenter.Lat != 33.2 {
		t.Fatalf("relayed JMA document parsed as %+v", rec.alerts[1])
	}
}

func TestRefusesReplays(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	body := fieldBody(t, "")
	req := h.signed(body)
	replay := req.Clone(context.Background())
	replay.Body = io.NopCloser(bytes.NewReader(body))
	h.expect(req, http.StatusAccepted, "")
	h.expect(replay, http.StatusConflict, "replay")
	h.clock.Advance(time.Second) // the same body signed a second later is a new request
	h.expect(h.signed(body), http.StatusAccepted, "")
	h.expect(h.signed(fieldBody(t, `,"nonce":"a"`)), http.StatusAccepted, "") // or with a nonce, at once
	h.expect(h.signed(fieldBody(t, `,"nonce":"b"`)), http.StatusAccepted, "")
}

func TestTimestampWindow(t *testing.T) {
	h := newHarness(t, webhook.Config{Window: time.Minute})
	body := fieldBody(t, "")
	req := h.signed(body)
	h.clock.Advance(61 * time.Second)
	a := h.expect(req, http.StatusUnauthorized, "stale_timestamp")
	if !strings.Contains(a.Error, "1m1s from the server's clock; the window is ±1m0s") {
		t.Fatalf("error %q", a.Error)
	}
	future, _ := webhook.NewRequest(context.Background(), h.srv.URL, relayID, secret, body, h.clock.Now().Add(2*time.Minute))
	h.expect(future, http.StatusUnauthorized, "stale_timestamp")
	edge, _ := webhook.NewRequest(context.Background(), h.srv.URL, relayID, secret, body, h.clock.Now().Add(-time.Minute))
	h.expect(edge, http.StatusAccepted, "")
}

func TestRefusals(t *testing.T) {
	h := newHarness(t, webhook.Config{MaxBodyBytes: 4096})
	body := fieldBody(t, "")
	with := func(mutate func(r *http.Request)) *http.Request {
		r := h.signed(body)
		mutate(r)
		return r
	}
	h.expect(with(func(r *http.Request) { r.Method = http.MethodGet }), http.StatusMethodNotAllowed, "method_not_allowed")
	h.expect(with(func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }), http.StatusUnsupportedMediaType, "unsupported_media_type")
	h.expect(with(func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=latin1") }), http.StatusUnsupportedMediaType, "unsupported_media_type")
	h.expect(with(func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=UTF-8") }), http.StatusAccepted, "")
	h.expect(with(func(r *http.Request) { r.Header.Del(webhook.HeaderRelay) }), http.StatusUnauthorized, "unknown_relay")
	h.expect(with(func(r *http.Request) { r.Header.Set(webhook.HeaderRelay, "other") }), http.StatusUnauthorized, "unknown_relay")
	h.expect(with(func(r *http.Request) { r.Header.Set(webhook.HeaderTimestamp, "-5") }), http.StatusBadRequest, "bad_timestamp")
	h.expect(with(func(r *http.Request) { r.Header.Set(webhook.HeaderTimestamp, "99999999999999999999") }), http.StatusBadRequest, "bad_timestamp")
	h.expect(with(func(r *http.Request) { r.Header.Del(webhook.HeaderTimestamp) }), http.StatusBadRequest, "bad_timestamp")
	h.expect(with(func(r *http.Request) { r.Header.Del(webhook.HeaderSignature) }), http.StatusUnauthorized, "bad_signature")
	h.expect(with(func(r *http.Request) { r.Header.Set(webhook.HeaderSignature, "sha256=zz") }), http.StatusUnauthorized, "bad_signature")
	h.expect(with(func(r *http.Request) {
		r.Header.Set(webhook.HeaderSignature, webhook.Sign([]byte("another-secret-of-16+"), body, h.clock.Now()))
	}), http.StatusUnauthorized, "bad_signature")
	h.expect(with(func(r *http.Request) { // a timestamp the signature does not cover
		r.Header.Set(webhook.HeaderTimestamp, fmt.Sprint(h.clock.Now().Unix()+1))
	}), http.StatusUnauthorized, "bad_signature")
	tampered := bytes.Replace(body, []byte(`"lat":33.2`), []byte(`"lat":34.2`), 1)
	h.expect(with(func(r *http.Request) { r.Body = io.NopCloser(bytes.NewReader(tampered)) }), http.StatusUnauthorized, "bad_signature")

	large := documentBody(t, alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")) // 7 KiB > 4 KiB
	h.expect(h.signed(large), http.StatusRequestEntityTooLarge, "too_large")
	chunked := h.signed(large)
	chunked.ContentLength = -1 // no length announced: the limit is found while reading
	chunked.Body = io.NopCloser(bytes.NewReader(large))
	h.expect(chunked, http.StatusRequestEntityTooLarge, "too_large")

	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"not JSON":      {[]byte(`{"version":1,`), "malformed JSON"},
		"unknown field": {fieldBody(t, `,"colour":"red"`), "webhook: colour: unknown field"},
		"version":       {[]byte(`{"version":2,"relay_id":"kochi-phone-1"}`), "webhook: version: 2, want 1"},
		"other relay":   {bytes.Replace(body, []byte(relayID), []byte("tokyo-1"), 1), `relay_id "tokyo-1" does not match`},
		"missing kind":  {bytes.Replace(body, []byte(`"kind":"eew",`), nil, 1), "webhook: kind: must be one of"},
		"bad latitude":  {bytes.Replace(body, []byte(`"lat":33.2`), []byte(`"lat":133.2`), 1), "webhook: hypocenter.lat: must be within [-90, 90]"},
		"both":          {[]byte(`{"version":1,"relay_id":"kochi-phone-1","document":"<a/>","event_id":"x"}`), `document: cannot be combined with alert fields (event_id)`},
		"bad document":  {documentBody(t, []byte("<Report xmlns='http://xml.kishou.go.jp/jmaxml1/'>")), "webhook: document: jma: malformed XML"},
		"nested relay":  {documentBody(t, fieldBody(t, "")), "a relay body cannot embed another relay body"},
	} {
		a := h.expect(h.signed(tc.body), http.StatusBadRequest, "bad_body")
		if !strings.Contains(a.Error, tc.want) {
			t.Errorf("%s: error %q, want one containing %q", name, a.Error, tc.want)
		}
	}
}

func TestSinkRefusalsAndFailures(t *testing.T) {
	h := newHarness(t, webhook.Config{})
	body := fieldBody(t, "")
	h.rec.setFail(fmt.Errorf("%w: cancel for unknown event", webhook.ErrRejected))
	if a := h.expect(h.signed(body), http.StatusUnprocessableEntity, "rejected"); !strings.Contains(a.Error, "unknown event") {
		t.Fatalf("error %q", a.Error)
	}
	h.clock.Advance(time.Second)
	h.rec.setFail(errors.New("store unavailable"))
	req := h.signed(body)
	retry := req.Clone(context.Background())
	retry.Body = io.NopCloser(bytes.NewReader(body))
	if a := h.expect(req, http.StatusInternalServerError, "sink_failed"); strings.Contains(a.Error, "store") {
		t.Fatalf("internal error leaked to the relay: %q", a.Error)
	}
	h.rec.setFail(nil)
	h.expect(retry, http.StatusAccepted, "") // a failed request may be retried as it was
}

func TestReplayCacheFullRefusesRatherThanForgets(t *testing.T) {
	h := newHarness(t, webhook.Config{ReplayCacheSize: 2})
	h.expect(h.signed(fieldBody(t, `,"nonce":"1"`)), http.StatusAccepted, "")
	h.expect(h.signed(fieldBody(t, `,"nonce":"2"`)), http.StatusAccepted, "")
	h.expect(h.signed(fieldBody(t, `,"nonce":"3"`)), http.StatusServiceUnavailable, "busy")
	h.clock.Advance(webhook.DefaultWindow + time.Second) // the first two expire
	h.expect(h.signed(fieldBody(t, `,"nonce":"3"`)), http.StatusAccepted, "")
}

func TestSignAndVerify(t *testing.T) {
	ts := time.Unix(1713363299, 0)
	body := []byte(`{"version":1}`)
	// Computed independently: HMAC-SHA256(secret, "1713363299." + body).
	const want = "sha256=994275df9c9e23c02003f89d0e13ce374b8c579624230517f5d7f486d30f02bc"
	if got := webhook.Sign(secret, body, ts); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !webhook.Verify(secret, body, "1713363299", want) {
		t.Fatal("Verify refuses a good signature")
	}
	for name, ok := range map[string]bool{
		"secret":    webhook.Verify([]byte("0123456789abcdef-secreT"), body, "1713363299", want),
		"timestamp": webhook.Verify(secret, body, "1713363300", want),
		"body":      webhook.Verify(secret, []byte(`{"version":2}`), "1713363299", want),
		"prefix":    webhook.Verify(secret, body, "1713363299", strings.TrimPrefix(want, "sha256=")),
		"case":      webhook.Verify(secret, body, "1713363299", strings.ToUpper(want)),
		"short":     webhook.Verify(secret, body, "1713363299", want[:20]),
	} {
		if ok {
			t.Errorf("Verify accepts a signature with another %s", name)
		}
	}
	if _, err := webhook.NewRequest(context.Background(), "http://x", relayID, []byte("short"), body, ts); err == nil {
		t.Error("NewRequest signs with a short secret")
	}
	if _, err := webhook.StaticSecrets(map[string][]byte{relayID: []byte("short")}); err == nil {
		t.Error("StaticSecrets takes a short secret")
	}
	if _, err := webhook.StaticSecrets(map[string][]byte{"bad id!": secret}); err == nil {
		t.Error("StaticSecrets takes a bad relay id")
	}
}

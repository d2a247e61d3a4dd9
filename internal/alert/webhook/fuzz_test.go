package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	"github.com/refuge-project/refuge/internal/alert/webhook"
)

// FuzzWebhook feeds arbitrary bodies to ParseBody and, signed by a known
// relay, to the Handler: neither may panic; a parsed body's alerts must
// validate and survive a JSON round trip; the handler must answer 202 for
// exactly the bodies ParseBody takes from this relay and 400 for the
// others. The seed corpus (testdata/fuzz/FuzzWebhook) holds field and
// document bodies.
func FuzzWebhook(f *testing.F) {
	secrets, err := webhook.StaticSecrets(map[string][]byte{relayID: secret})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1713363299, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		// A handler per input: the fuzzer repeats inputs, which one
		// handler would refuse as replays.
		handler, err := webhook.NewHandler(webhook.Config{Secret: secrets, Clock: &fakeClock{now: now}},
			func(context.Context, *alert.Alert) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		b, alerts, err := webhook.ParseBody(body)
		if err == nil {
			alerttest.Check(t, alerts...)
		}
		req, err2 := webhook.NewRequest(context.Background(), "http://relay.test/", relayID, secret, body, now)
		if err2 != nil {
			t.Fatal(err2)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		want := http.StatusBadRequest
		switch {
		case len(body) > webhook.DefaultMaxBodyBytes:
			want = http.StatusRequestEntityTooLarge
		case err == nil && b.RelayID == relayID:
			want = http.StatusAccepted
		}
		if w.Code != want {
			t.Fatalf("handler answered %d (%s), want %d (ParseBody: %v)", w.Code, w.Body, want, err)
		}
	})
}

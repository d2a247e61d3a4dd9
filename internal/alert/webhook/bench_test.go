package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	"github.com/refuge-project/refuge/internal/alert/webhook"
)

// BenchmarkRelayLoopback measures one signed relay request carrying a JMA
// EEW warning, over a loopback connection, from sending to the sink's
// return.
func BenchmarkRelayLoopback(b *testing.B) {
	secrets, _ := webhook.StaticSecrets(map[string][]byte{relayID: secret})
	clk := &fakeClock{now: time.Unix(1713363299, 0)}
	h, err := webhook.NewHandler(webhook.Config{Secret: secrets, Clock: clk}, func(context.Context, *alert.Alert) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	doc := alerttest.Fixture(b, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	client := srv.Client()
	i := 0
	for b.Loop() {
		i++
		body := []byte(`{"version":1,"relay_id":"` + relayID + `","nonce":"` + strconv.Itoa(i) + `","document":` + jsonString(b, doc) + `}`)
		req, err := webhook.NewRequest(context.Background(), srv.URL, relayID, secret, body, clk.Now())
		if err != nil {
			b.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func jsonString(b *testing.B, s []byte) string {
	js, err := json.Marshal(string(s))
	if err != nil {
		b.Fatal(err)
	}
	return string(js)
}

package alertsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/webhook"
)

func TestP2PQuakeReconnects(t *testing.T) {
	eew := fixture(t, "p2pquake/p2pqapi_556_eew_20220811_soya_array.json")
	var record json.RawMessage // the array's one record, as the stream sends it
	var arr []json.RawMessage
	if err := json.Unmarshal(eew, &arr); err != nil || len(arr) != 1 {
		t.Fatalf("fixture: %v", err)
	}
	record = arr[0]
	sessions := [][][]byte{
		{
			fixture(t, "p2pquake/p2pqapi_551_ScalePrompt_20160414_kumamoto.json"),
			[]byte(`{"code":555,"id":"peers","time":"2026/01/01 00:00:00.000","areas":[]}`),
			[]byte(`{"code":551,"id":"bad","issue":{"time":"yesterday"}}`),
			[]byte(`not json`),
		},
		{record, fixture(t, "p2pquake/p2pqapi_552_Focus_20231009_torishima.json")},
	}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		i := int(n.Add(1)) - 1
		if i >= len(sessions) {
			// Stay open until the client goes.
			_, _, _ = conn.Read(r.Context())
			return
		}
		for _, m := range sessions[i] {
			if err := conn.Write(r.Context(), websocket.MessageText, m); err != nil {
				return
			}
		}
		conn.Close(websocket.StatusGoingAway, "maintenance")
	}))
	defer srv.Close()

	c := newCollector()
	var connects atomic.Int32
	src := &P2PQuake{Common: Common{OnError: c.onError}, URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Client: srv.Client(),
		Backoff: NewBackoff(time.Millisecond, 2*time.Millisecond, 5), OnConnect: func() { connects.Add(1) }}
	stop := run(t, src, c.sink)
	c.waitFor(t, "three alerts over two connections", func(a []*alert.Alert, _ []error) bool { return len(a) == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	alerts, errs := c.snapshot()
	if got := products(alerts); strings.Join(got, " ") != "551/ScalePrompt/alert 556/alert 552/Focus/alert" {
		t.Errorf("alerts %v", got)
	}
	if connects.Load() < 2 {
		t.Errorf("%d connections, want a reconnection", connects.Load())
	}
	var text []string
	for _, e := range errs {
		text = append(text, e.Error())
	}
	joined := strings.Join(text, "\n")
	for _, want := range []string{"record bad (code 551)", "not a JSON record", "closed by the server"} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors do not mention %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "peers") {
		t.Errorf("a 555 record was reported: %s", joined)
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Named so that name order differs from issue order.
	write("b-eew.xml", fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	write("a-cancel.xml", fixture(t, "jma/jmasample_37_01_03_240613_VXSE43.xml"))
	write("c-truncated.xml", fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")[:500])
	write(".hidden.xml", fixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml"))
	write("d.xml.tmp", fixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml"))
	write("README.md", []byte("# not an alert\n"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	c := newCollector()
	src := &File{Common: Common{OnError: c.onError}, Path: dir}
	if err := src.Run(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	alerts, errs := c.snapshot()
	if got := strings.Join(products(alerts), " "); got != "VXSE43/cancel VXSE43/alert" {
		t.Errorf("name order: %s", got)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "c-truncated.xml") {
		t.Errorf("errors %v", errs)
	}

	// Paced: issue order (the EEW at 23:14:59, its cancellation at
	// 23:17:00), 1e6 times faster than issued.
	c = newCollector()
	src = &File{Path: dir, Pace: 1e6}
	if err := src.Run(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); strings.Join(products(a), " ") != "VXSE43/alert VXSE43/cancel" {
		t.Errorf("paced order: %v", products(a))
	}

	// Watching: a new file is read, an unchanged one is not read again.
	c = newCollector()
	src = &File{Path: dir, Interval: time.Millisecond}
	stop := run(t, src, c.sink)
	c.waitFor(t, "the first reading", func(a []*alert.Alert, _ []error) bool { return len(a) == 2 })
	write("e-tsunami.xml", fixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml"))
	c.waitFor(t, "the new file", func(a []*alert.Alert, _ []error) bool { return len(a) == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); len(a) != 3 || a[2].Product != "VTSE41" {
		t.Errorf("alerts %v", products(a))
	}

	// One file; a missing path is an error.
	c = newCollector()
	if err := (&File{Path: filepath.Join(dir, "b-eew.xml")}).Run(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); len(a) != 1 {
		t.Errorf("%d alerts from one file", len(a))
	}
	if err := (&File{Path: filepath.Join(dir, "nope")}).Run(context.Background(), c.sink); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
}

func TestWebhookSource(t *testing.T) {
	secret := []byte("0123456789abcdef-relay-secret")
	secrets, err := webhook.StaticSecrets(map[string][]byte{"phone-1": secret})
	if err != nil {
		t.Fatal(err)
	}
	addrs := make(chan net.Addr, 1)
	c := newCollector()
	c.reject = func(a *alert.Alert) error {
		if a.MsgType == alert.MsgCancel {
			return fmt.Errorf("cancel for unknown event %s: %w", a.EventID, ErrRejected)
		}
		return nil
	}
	src := &Webhook{Addr: "127.0.0.1:0", Config: webhook.Config{Secret: secrets}, OnListen: func(a net.Addr) { addrs <- a }}
	stop := run(t, src, c.sink)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var addr net.Addr
	select {
	case addr = <-addrs:
	case <-time.After(10 * time.Second):
		t.Fatal("no listener")
	}
	url := "http://" + addr.String() + "/v1/alerts/relay"
	post := func(doc []byte, nonce string) int {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"version": 1, "relay_id": "phone-1", "nonce": nonce, "document": string(doc)})
		req, err := webhook.NewRequest(context.Background(), url, "phone-1", secret, body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return do(t, req)
	}
	eew := fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	if got := post(eew, "1"); got != http.StatusAccepted {
		t.Fatalf("status %d", got)
	}
	if got := post(fixture(t, "jma/jmasample_37_01_03_240613_VXSE43.xml"), "2"); got != http.StatusUnprocessableEntity {
		t.Errorf("rejected cancel: status %d, want 422", got)
	}
	// A replayed request (same signature and timestamp) is refused.
	body, _ := json.Marshal(map[string]any{"version": 1, "relay_id": "phone-1", "nonce": "3", "document": string(eew)})
	req, _ := webhook.NewRequest(context.Background(), url, "phone-1", secret, body, time.Now())
	replay := req.Clone(context.Background())
	replay.Body, replay.GetBody = nil, nil
	if got := do(t, req); got != http.StatusAccepted {
		t.Fatalf("status %d", got)
	}
	replay.Body = io.NopCloser(bytes.NewReader(body))
	if got := do(t, replay); got != http.StatusConflict {
		t.Errorf("replay: status %d, want 409", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); len(a) != 2 || a[0].ReceivedAt.IsZero() {
		t.Errorf("alerts %v", products(a))
	}
	// The address is free again.
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Errorf("listener not closed: %v", err)
	} else {
		ln.Close()
	}
}

func do(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func TestFromSpec(t *testing.T) {
	secrets := func(string) ([]byte, bool) { return nil, false }
	for spec, want := range map[string]string{
		"file:/tmp/alerts":                    "file /tmp/alerts",
		"webhook:127.0.0.1:8080":              "webhook 127.0.0.1:8080",
		"jma-atom:https://example.org/eq.xml": "atom https://example.org/eq.xml",
		"usgs:https://example.org/f.geojson":  "usgs https://example.org/f.geojson",
		"p2pquake:":                           "p2pquake " + P2PQuakeURL,
		"p2pquake:ws://127.0.0.1:1/ws":        "p2pquake ws://127.0.0.1:1/ws",
	} {
		src, err := FromSpec(spec, SpecOptions{Secret: secrets})
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		if src.Name() != want {
			t.Errorf("%s: %s, want %s", spec, src.Name(), want)
		}
	}
	if a, _ := FromSpec("jma-atom:https://x/", SpecOptions{}); len(a.(*Atom).Titles) == 0 {
		t.Error("jma-atom without the JMA titles")
	}
	for _, bad := range []string{"nothing", "ftp:x", "file:", "webhook:1.2.3.4:5"} {
		if _, err := FromSpec(bad, SpecOptions{}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

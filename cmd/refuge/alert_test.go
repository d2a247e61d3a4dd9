package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/clock"
)

// TestAlertParseEveryFixture runs "alert parse F --json" and "alert parse
// F" on every fixture: the JSON must be one object, an alert or
// {"alerts": [...]} for a feed of several, and carry the fields the issue
// names.
func TestAlertParseEveryFixture(t *testing.T) {
	feeds := 0
	for _, path := range alerttest.Fixtures(t) {
		out, _, err := runCLI(t, "alert", "parse", path, "--json")
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		objs, err := parsedAlerts(out)
		if err != nil || len(objs) == 0 {
			t.Errorf("%s: --json output is not one object, an alert or {\"alerts\": [...]}: %v", path, err)
			continue
		}
		if len(objs) > 1 {
			feeds++
		}
		for _, o := range objs {
			for _, k := range []string{"format", "kind", "status", "msg_type", "event_id", "issued_at"} {
				if s, _ := o[k].(string); s == "" {
					t.Errorf("%s: --json lacks %q", path, k)
				}
			}
		}
		human, _, err := runCLI(t, "alert", "parse", path)
		if err != nil || !strings.Contains(human, objs[0]["event_id"].(string)) || !strings.Contains(human, "digest") {
			t.Errorf("%s: summary %q, %v", path, human, err)
		}
	}
	if feeds == 0 {
		t.Error("no fixture holds several alerts: the {\"alerts\": [...]} form went untested")
	}
}

// parsedAlerts decodes alert parse --json: one alert, or {"alerts": [...]}.
func parsedAlerts(out string) ([]map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, err
	}
	list, ok := doc["alerts"].([]any)
	if !ok {
		return []map[string]any{doc}, nil
	}
	var objs []map[string]any
	for _, a := range list {
		m, ok := a.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("alerts holds %T", a)
		}
		objs = append(objs, m)
	}
	return objs, nil
}

func TestAlertParseShowsWhatMatters(t *testing.T) {
	out, _, err := runCLI(t, "alert", "parse", filepath.Join(alerttest.Testdata(), "jma/jmasample_32-39_11_02_250206_VTSE41.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jma VTSE41: tsunami alert (actual)", "岩手県 [210] major_warning, now (津波到達中と推測)", "… and 31 more"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestAlertParseRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := filepath.Join(dir, "huge.xml")
	if err := os.WriteFile(huge, []byte("<Report>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 100<<20); err != nil { // a sparse 100 MB file
		t.Fatal(err)
	}
	doc := string(alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"truncated":   {[]string{write("t.xml", doc[:len(doc)/2])}, "t.xml: jma: malformed XML: document ends inside an element"},
		"namespace":   {[]string{write("n.xml", strings.Replace(doc, "informationBasis1", "informationBasis2", 1))}, "jma: Head: namespace"},
		"unknown":     {[]string{write("u.json", `{"hello": "world"}`)}, "not a recognised alert document: JSON object with members hello"},
		"huge":        {[]string{huge}, "huge.xml: document too large"},
		"missing":     {[]string{filepath.Join(dir, "nope.xml")}, "no such file"},
		"format":      {[]string{write("f.xml", doc), "--format", "cap"}, "cap: alert: root element <Report>"},
		"bad format":  {[]string{write("g.xml", doc), "--format", "atom"}, `unknown format "atom"`},
		"coordinates": {[]string{write("c.xml", strings.Replace(doc, "+33.2+132.4", "+33.2+232.4", 1))}, "longitude 232.4 out of range"},
	} {
		_, _, err := runCLI(t, append([]string{"alert", "parse"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// TestAlertSignEveryFixture signs every fixture and sends the printed
// request to a real relay handler, which must accept it.
func TestAlertSignEveryFixture(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	ts := time.Unix(1713363299, 0)
	var got []*alert.Alert
	secrets, _ := webhook.StaticSecrets(map[string][]byte{"kochi-phone-1": []byte(secret)})
	h, err := webhook.NewHandler(webhook.Config{Secret: secrets, Clock: fixedClock{ts}, MaxBodyBytes: alert.MaxDocumentSize},
		func(_ context.Context, a *alert.Alert) error { got = append(got, a); return nil })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	secretFile := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secretFile, []byte(secret+"\n"))
	for _, path := range alerttest.Fixtures(t) {
		out, _, err := runCLI(t, "alert", "sign", path, "--secret-file", secretFile, "--relay", "kochi-phone-1",
			"--timestamp", "1713363299", "--url", srv.URL, "--json")
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		var req struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
			Curl    string            `json:"curl"`
		}
		if err := json.Unmarshal([]byte(out), &req); err != nil {
			t.Fatal(err)
		}
		if !webhook.Verify([]byte(secret), []byte(req.Body), req.Headers[webhook.HeaderTimestamp], req.Headers[webhook.HeaderSignature]) {
			t.Errorf("%s: the printed signature does not verify", path)
		}
		if !strings.HasPrefix(req.Curl, "curl -sS -X POST '"+srv.URL+"'") || !strings.Contains(req.Curl, "X-Refuge-Signature: sha256=") {
			t.Errorf("%s: curl command %q", path, req.Curl)
		}
		hr, _ := http.NewRequest(http.MethodPost, req.URL, strings.NewReader(req.Body))
		for k, v := range req.Headers {
			hr.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("%s: the handler answered %d", path, resp.StatusCode)
		}
	}
	if len(got) < len(alerttest.Fixtures(t)) || !got[0].ReceivedAt.Equal(ts) {
		t.Errorf("the handler received %d alerts", len(got))
	}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                              { return c.t }
func (c fixedClock) AfterFunc(time.Duration, func()) clock.Timer { panic("no timers") }

func TestAlertSignHumanOutputAndRelayBodies(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	t.Setenv(secretEnv, secret)
	out, _, err := runCLI(t, "alert", "sign", filepath.Join(alerttest.Testdata(), "cap/oasisspec_example3.xml"),
		"--timestamp", "1713363299")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POST http://127.0.0.1:8080/v1/alerts/relay\n", "X-Refuge-Relay: refuge-cli\n",
		"X-Refuge-Timestamp: 1713363299\n", "X-Refuge-Signature: sha256=", `"document":"<?xml`, "\ncurl -sS -X POST"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	body := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(body, []byte(`{"version":1,"relay_id":"phone-7","event_id":"e1","kind":"eew","status":"exercise",`+
		`"msg_type":"alert","issued_at":"2024-04-17T23:15:01+09:00"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, "alert", "sign", body)
	if err != nil || !strings.Contains(out, "X-Refuge-Relay: phone-7") {
		t.Errorf("a relay body is signed as its relay: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "alert", "sign", body, "--relay", "other"); err == nil || !strings.Contains(err.Error(), `relay_id is "phone-7"`) {
		t.Errorf("relay mismatch: %v", err)
	}
	t.Setenv(secretEnv, "")
	if _, _, err := runCLI(t, "alert", "sign", body); err == nil || !strings.Contains(err.Error(), "no secret: give --secret-file or set "+secretEnv) {
		t.Errorf("no secret: %v", err)
	}
}

// TestAlertSignSecretOffTheCommandLine: the secret comes from
// --secret-file before the environment; the deprecated --secret still
// works with a warning on stderr, never in the output; no secret is ever
// echoed in an error.
func TestAlertSignSecretOffTheCommandLine(t *testing.T) {
	const fileSecret, envSecret = "file-secret-0123456789", "env-secret-0123456789"
	dir := t.TempDir()
	doc := filepath.Join(alerttest.Testdata(), "cap/oasisspec_example3.xml")
	file, empty := filepath.Join(dir, "secret"), filepath.Join(dir, "empty")
	writeFile(t, file, []byte("  "+fileSecret+"\n"))
	writeFile(t, empty, []byte("\n"))
	signedWith := func(out, secret string) bool {
		var req struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		return json.Unmarshal([]byte(out), &req) == nil &&
			webhook.Verify([]byte(secret), []byte(req.Body), req.Headers[webhook.HeaderTimestamp], req.Headers[webhook.HeaderSignature])
	}
	t.Setenv(secretEnv, envSecret)
	if out, _, err := runCLI(t, "alert", "sign", doc, "--secret-file", file, "--json"); err != nil || !signedWith(out, fileSecret) {
		t.Errorf("--secret-file before %s: %v", secretEnv, err)
	}
	if out, _, err := runCLI(t, "alert", "sign", doc, "--json"); err != nil || !signedWith(out, envSecret) {
		t.Errorf("%s: %v", secretEnv, err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"alert", "sign", doc, "--secret", "argv-secret-0123456789", "--json"}, &out, &errOut); code != 0 ||
		!signedWith(out.String(), "argv-secret-0123456789") || !strings.Contains(errOut.String(), "Flag --secret has been deprecated") {
		t.Errorf("--secret: status %d, stderr %q", code, errOut.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--secret-file", filepath.Join(dir, "nope")}, "--secret-file: open"},
		{[]string{"--secret-file", empty}, "is empty"},
		{[]string{"--secret-file", file, "--secret", "argv-secret-0123456789"}, "not both"},
	} {
		_, _, err := runCLI(t, append([]string{"alert", "sign", doc}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret-0123456789") {
			t.Errorf("%v: error %v, want one with %q (and no secret)", tc.args, err, tc.want)
		}
	}
}

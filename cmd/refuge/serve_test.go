package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/store"
)

// TestServeAcceptance runs the acceptance commands in-process:
// token create, serve, /readyz, the OpenAPI document, a 401 without a
// token, status --json, evacuate --site --json, then operations watch
// until the evacuation ends (the simulation runs 300× real time).
func TestServeAcceptance(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"token", "create", "--role", "admin", "--data-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("token create: %d %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "rfg_") {
		t.Fatalf("token create's last line %q is not a token", token)
	}
	u, err := store.FreeURL()
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(u, "http://")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var serveOut bytes.Buffer
	go func() {
		root := newRoot(&serveOut, io.Discard)
		root.SetArgs([]string{"serve", "--simulate", "../../examples/nankai-trough", "--data-dir", dir, "--listen", addr, "--speed", "300"})
		served <- root.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, u+path, strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if !controllertest.Poll(20*time.Second, func() bool { c, _ := get("GET", "/readyz", ""); return c == 200 }) {
		t.Fatal("/readyz never answered 200")
	}
	code, body := get("GET", "/v1/openapi.json", "")
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if code != 200 || json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi.json: %d %.100s", code, body)
	}
	if code, body := get("POST", "/v1/evacuations", `{"site":"x"}`); code != 401 {
		t.Errorf("evacuation without a token: %d %s", code, body)
	}
	t.Setenv(serverEnv, u)
	t.Setenv(tokenEnv, token)
	cli := func(args ...string) []byte {
		t.Helper()
		var o, e bytes.Buffer
		if code := run(args, &o, &e); code != 0 {
			t.Fatalf("refuge %s: %d %s", strings.Join(args, " "), code, e.String())
		}
		return o.Bytes()
	}
	var st struct {
		Sites []struct {
			Name string `json:"name"`
		} `json:"sites"`
	}
	if err := json.Unmarshal(cli("status", "--json"), &st); err != nil || len(st.Sites) == 0 || st.Sites[0].Name == "" {
		t.Fatalf("status --json: %+v, %v", st, err)
	}
	var acc struct {
		OperationID string `json:"operation_id"`
	}
	if err := json.Unmarshal(cli("evacuate", "--site", st.Sites[0].Name, "--json"), &acc); err != nil || acc.OperationID == "" {
		t.Fatalf("evacuate --json: %+v, %v", acc, err)
	}
	watched := strings.Split(strings.TrimSpace(string(cli("operations", "watch", acc.OperationID, "--json", "--interval", "50ms"))), "\n")
	var final store.Operation
	if err := json.Unmarshal([]byte(watched[len(watched)-1]), &final); err != nil || final.Status != store.OpSucceeded || final.Progress.Migrated == 0 {
		t.Errorf("operations watch: last line %s (%v)", watched[len(watched)-1], err)
	}
}

// A continuity file that does not fit the federation stops serve before it
// serves, naming the file and the field.
func TestServeContinuityBadInput(t *testing.T) {
	dir := t.TempDir()
	conf := dir + "/continuity.yaml"
	if err := os.WriteFile(conf, []byte("gateways:\n  kochl: {admin_url: http://127.0.0.1:1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "serve", "--simulate", "../../examples/nankai-trough", "--data-dir", dir+"/data",
		"--listen", "127.0.0.1:0", "--continuity", conf)
	if err == nil || !strings.Contains(err.Error(), "continuity") || !strings.Contains(err.Error(), "kochl") {
		t.Fatalf("serve with a bad continuity file: %v, want an error naming it", err)
	}
	t.Logf("%v", err)
}

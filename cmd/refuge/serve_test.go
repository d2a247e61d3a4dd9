package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/store"
	"github.com/refuge-project/refuge/internal/testbed"
)

// served is a refuge serve running in-process.
type served struct {
	url, token string
	get        func(method, path, body string) (int, []byte)
}

// startServe creates an admin token in a new data directory and runs
// refuge serve with args on a free port until the test ends; it waits
// for /readyz.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	return startServeWith(t, serveWith{}, args...)
}

// serveWith varies startServe: the data directory (empty: a new one), and
// for a controller serving TLS, the scheme and the client that trusts it.
type serveWith struct {
	dir    string
	scheme string       // "http" if empty
	client *http.Client // nil: plain HTTP with a 5 s timeout
}

// startServeWith is startServe with w.
func startServeWith(t *testing.T, w serveWith, args ...string) *served {
	t.Helper()
	dir, scheme, hc := w.dir, w.scheme, w.client
	if dir == "" {
		dir = t.TempDir()
	}
	if scheme == "" {
		scheme = "http"
	}
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"token", "create", "--role", "admin", "--data-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("token create: %d %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "rfg_") {
		t.Fatalf("token create's last line %q is not a token", token)
	}
	free, err := store.FreeURL()
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(free, "http://")
	u := scheme + "://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		root := newRoot(io.Discard, io.Discard)
		root.SetArgs(append([]string{"serve", "--data-dir", dir, "--listen", addr}, args...))
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	s := &served{url: u, token: token, get: func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, u+path, strings.NewReader(body))
		if strings.HasPrefix(path, "/v1/") && path != "/v1/openapi.json" && method == "GET" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}}
	if !controllertest.Poll(20*time.Second, func() bool { c, _ := s.get("GET", "/readyz", ""); return c == 200 }) {
		t.Fatalf("/readyz never answered 200 over %s", scheme)
	}
	t.Setenv(serverEnv, u)
	t.Setenv(tokenEnv, token)
	return s
}

// cli runs a refuge command against the served controller (REFUGE_SERVER
// and REFUGE_TOKEN are set) and returns its output; it must succeed.
func (s *served) cli(t *testing.T, args ...string) []byte {
	t.Helper()
	var o, e bytes.Buffer
	if code := run(args, &o, &e); code != 0 {
		t.Fatalf("refuge %s: %d %s", strings.Join(args, " "), code, e.String())
	}
	return o.Bytes()
}

// TestServeAcceptance runs the acceptance commands in-process:
// token create, serve, /readyz, the OpenAPI document, a 401 without a
// token, status --json, evacuate --site --json, then operations watch
// until the evacuation ends (the simulation runs 300× real time).
func TestServeAcceptance(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after serve has stopped
	s := startServe(t, "--simulate", "../../examples/nankai-trough", "--speed", "300")
	get := s.get
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
	cli := func(args ...string) []byte { t.Helper(); return s.cli(t, args...) }
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

// TestServeAlertSource: serve's --source feeds the alert pipeline: the
// drill's EEW (an exercise, acted on) starts an evacuation of Kochi by
// the alert pipeline.
func TestServeAlertSource(t *testing.T) {
	s := startServe(t, "--simulate", "../../examples/nankai-trough", "--speed", "300", "--act-on", "actual,exercise",
		"--source", "file:../../examples/nankai-trough/drill/01-eew.json")
	var ops []store.Operation
	if !controllertest.Poll(20*time.Second, func() bool {
		code, body := s.get("GET", "/v1/operations", "")
		return code == 200 && json.Unmarshal(body, &ops) == nil && len(ops) > 0
	}) {
		t.Fatal("no evacuation started from the alert source")
	}
	if ops[0].CreatedBy != "alert pipeline" || len(ops[0].Sites) == 0 || ops[0].Sites[0].Site != "kochi" {
		t.Errorf("operation %+v, want the alert pipeline's evacuation of kochi", ops[0])
	}
}

// TestServeRealHosts: with --federation, serve connects to the hosts'
// libvirt daemons; when none answers it stops, saying so. Bad flag
// combinations are refused first.
func TestServeRealHosts(t *testing.T) {
	dir := t.TempDir()
	fed := dir + "/federation.yaml"
	writeFile(t, fed, []byte(`
name: nowhere
sites:
  - {name: a, lat: 33, lon: 135, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 4096, nic_mbps: 1000, uri: "qemu+tcp://127.0.0.1:1/system"}]}]}
  - {name: b, lat: 34, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 4096, nic_mbps: 1000, uri: "qemu+tcp://127.0.0.1:1/system?x=b"}]}]}
links:
  - {name: a-b, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: v1, host: a1, vcpu: 1, memory_mib: 512, storage: shared}
`))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--federation", fed, "--simulate", "../../examples/nankai-trough"}, "give --simulate DIR"},
		{[]string{"--federation", fed, "--speed", "10"}, "--speed needs --simulate"},
		{[]string{"--federation", fed, "--connect-timeout", "3s"}, "none of the 2 hosts of nowhere is reachable"},
		{[]string{"--simulate", "../../examples/nankai-trough", "--monitor-roster", dir + "/none.yaml"}, "--monitor-roster"},
	} {
		_, _, err := runCLI(t, append([]string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestServeRealSites (integration): refuge serve --federation on a
// two-site test bed of real QEMU guests. status reads where the guests run
// from the hosts' daemons; an evacuation of site a started through the API
// migrates them to b (non-live: QEMU 7.2 under TCG, docs/libvirt.md),
// journaled as an operation that succeeds; the guests then run on b only
// and still pass their memory check. Then an alert dropped into serve's
// file source (an area warning around b; the threat policy evacuates
// such areas within 10 minutes) makes the alert pipeline evacuate b: the
// guests come back to a, alive.
func TestServeRealSites(t *testing.T) {
	b := startBed(t, 2, []testbed.LinkSpec{{A: 0, B: 1, RateMbit: 100, RTT: 4 * time.Millisecond}})
	a, dst := b.Sites[0], b.Sites[1]
	vms := []string{"g1", "g2"}
	startGuests(t, a, vms)
	dir := t.TempDir()
	fedFile, policy, alerts := filepath.Join(dir, "federation.yaml"), filepath.Join(dir, "threat.yaml"), filepath.Join(dir, "alerts")
	writeFile(t, fedFile, []byte(federationYAML(b, b.Sites, b.Links, vms, a)))
	writeFile(t, policy, []byte("areas: {level: evacuate, deadline: 10m}\n"))
	if err := os.Mkdir(alerts, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--federation", fedFile, "--non-live", "--connect-timeout", "20s",
		"--threat-policy", policy, "--source", "file:"+alerts, "--interval", "500ms")

	var st struct {
		Sites []struct {
			Name string `json:"name"`
			VMs  int    `json:"vms"`
		} `json:"sites"`
	}
	if err := json.Unmarshal(s.cli(t, "status", "--json"), &st); err != nil || len(st.Sites) != 2 || st.Sites[0].VMs != len(vms) {
		t.Fatalf("status --json: %+v, %v; want %d VMs on %s", st, err, len(vms), a.Name)
	}
	var acc struct {
		OperationID string `json:"operation_id"`
	}
	if err := json.Unmarshal(s.cli(t, "evacuate", "--site", a.Name, "--deadline", "10m", "--json"), &acc); err != nil || acc.OperationID == "" {
		t.Fatalf("evacuate --json: %+v, %v", acc, err)
	}
	watched := strings.Split(strings.TrimSpace(string(s.cli(t, "operations", "watch", acc.OperationID, "--json", "--interval", "500ms"))), "\n")
	var final store.Operation
	if err := json.Unmarshal([]byte(watched[len(watched)-1]), &final); err != nil || final.Status != store.OpSucceeded || final.Progress.Migrated != len(vms) {
		t.Fatalf("operations watch: last line %s (%v); want succeeded, %d migrated", watched[len(watched)-1], err, len(vms))
	}
	activeOnlyOn(t, b, vms, dst)
	if t.Failed() {
		return
	}

	// The alert: a's site is at lat 33, b's at lat 34 (federationYAML).
	doc := fmt.Sprintf(`{"version": 1, "relay_id": "test", "nonce": "1", "event_id": "outage-b", "serial": 1,
  "kind": "other", "status": "actual", "msg_type": "alert", "issued_at": %q,
  "headline": "planned power outage at b", "areas": [{"name": "b", "circles": [{"center": [34, 135], "radius_km": 5}]}]}`,
		time.Now().UTC().Format(time.RFC3339))
	writeFile(t, filepath.Join(alerts, ".outage.json"), []byte(doc))
	if err := os.Rename(filepath.Join(alerts, ".outage.json"), filepath.Join(alerts, "outage.json")); err != nil {
		t.Fatal(err)
	}
	var back store.Operation
	if !controllertest.Poll(5*time.Minute, func() bool {
		code, body := s.get("GET", "/v1/operations", "")
		var ops []store.Operation
		if code != 200 || json.Unmarshal(body, &ops) != nil {
			return false
		}
		for _, op := range ops {
			if op.CreatedBy == "alert pipeline" {
				back = op
				return op.Status != store.OpPending && op.Status != store.OpRunning
			}
		}
		return false
	}) {
		t.Fatalf("the alert's evacuation of %s did not end within 5 minutes: %+v", dst.Name, back)
	}
	if back.Status != store.OpSucceeded || back.Progress.Migrated != len(vms) || len(back.Sites) != 1 || back.Sites[0].Site != dst.Name {
		t.Fatalf("the alert's evacuation: %+v; want %s evacuated, %d migrated", back, dst.Name, len(vms))
	}
	activeOnlyOn(t, b, vms, a)
}

// activeOnlyOn checks that each of vms is active (running or paused) on
// site on only and that its guest still passes its memory check there.
func activeOnlyOn(t *testing.T, b *testbed.Bed, vms []string, on *testbed.Site) {
	t.Helper()
	ctx := context.Background()
	for _, v := range vms {
		for _, site := range b.Sites {
			state := site.State(ctx, v)
			if active := state == "running" || state == "paused"; active != (site == on) {
				t.Errorf("%s is %q on %s; want it active on %s only", v, state, site.Name, on.Name)
			}
		}
		out := on.ConsoleSince(v, 0)
		if _, err := on.WaitConsole(ctx, v, int64(len(out)), "memchk OK", 90*time.Second); err != nil {
			t.Errorf("%s on %s: %v", v, on.Name, err)
		}
	}
}

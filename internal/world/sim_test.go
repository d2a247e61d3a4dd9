package world

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/threat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lowEstimatePolicy is the threat policy's old estimate (a crustal fault
// on stiff ground, no margin): lower intensities, later deadlines.
func lowEstimatePolicy() *threat.Policy {
	pol := threat.DefaultPolicy()
	pol.Shaking.AVS30, pol.Shaking.FaultType, pol.Shaking.Margin = 400, threat.FaultCrustal, 0
	return &pol
}

// TestEndToEndOverWebhook runs the whole pipeline in real time, 600 times
// faster than real: a relay posts an EEW, an update and a cancellation;
// the simulated federation starts migrating, moves the deadline and stops.
// It tests the plumbing, so it pins the old estimate (lowEstimatePolicy),
// under which the update moves Kochi's deadline; under the defaults the
// update makes Kochi 7 and the site is lost before the cancellation.
func TestEndToEndOverWebhook(t *testing.T) {
	fed := controllertest.Nankai(t)
	var mu sync.Mutex
	var timeline []executor.Event
	started := make(chan struct{}, 1)
	withdrawn := make(chan struct{}, 1)
	w, err := NewSim(SimConfig{Federation: fed, Speed: 600, Epoch: evacsim.Epoch,
		OnEvent: func(_ time.Time, ev executor.Event) {
			mu.Lock()
			timeline = append(timeline, ev)
			mu.Unlock()
			if ev.Kind == executor.EvStart {
				notify(started)
			}
			if ev.Kind == executor.EvDeadline && strings.Contains(ev.Detail, "withdrawn") {
				notify(withdrawn)
			}
		},
		OnSiteLost: func(_ time.Time, site string) { t.Errorf("site %s lost after its threat was withdrawn", site) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var pevents []pipeline.Event
	p, err := pipeline.New(pipeline.Config{Federation: fed, Policy: lowEstimatePolicy(), Target: w.Target(), Clock: w.PipelineClock(), Replay: true,
		OnEvent: func(ev pipeline.Event) { mu.Lock(); pevents = append(pevents, ev); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("end-to-end-relay-secret-0123")
	secrets, _ := webhook.StaticSecrets(map[string][]byte{"phone": secret})
	addrs := make(chan net.Addr, 1)
	src := &alertsource.Webhook{Addr: "127.0.0.1:0", Config: webhook.Config{Secret: secrets}, OnListen: func(a net.Addr) { addrs <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- w.Run(ctx) }()
	go func() { errs <- p.Run(ctx, src) }()
	defer func() {
		cancel()
		<-errs
		<-errs
		http.DefaultClient.CloseIdleConnections()
	}()
	url := "http://" + (<-addrs).String() + "/"
	send := func(fields map[string]any, nonce string) int {
		t.Helper()
		fields["version"], fields["relay_id"], fields["nonce"] = 1, "phone", nonce
		body, _ := json.Marshal(fields)
		req, _ := webhook.NewRequest(context.Background(), url, "phone", secret, body, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	issued := evacsim.Epoch
	if got := send(NankaiEEWFields("e2e", issued), "1"); got != http.StatusAccepted {
		t.Fatalf("EEW: %d", got)
	}
	waitChan(t, started, "the first migration")
	// Serial 2 moves the hypocentre nearer Kochi: an earlier deadline.
	upd := NankaiEEWFields("e2e", issued.Add(time.Second))
	upd["serial"] = 2
	upd["hypocenter"].(map[string]any)["lat"] = 33.0
	if got := send(upd, "2"); got != http.StatusAccepted {
		t.Fatalf("update: %d", got)
	}
	// A cancel for an unknown event is refused with 422 and changes nothing.
	if got := send(map[string]any{"event_id": "nope", "serial": 1, "kind": "eew", "status": "actual", "msg_type": "cancel",
		"issued_at": issued.Format(time.RFC3339)}, "3"); got != http.StatusUnprocessableEntity {
		t.Errorf("unknown cancel: %d, want 422", got)
	}
	if got := send(map[string]any{"event_id": "e2e", "serial": 3, "kind": "eew", "status": "actual", "msg_type": "cancel",
		"issued_at": issued.Add(2 * time.Second).Format(time.RFC3339)}, "4"); got != http.StatusAccepted {
		t.Fatalf("cancel: %d", got)
	}
	waitChan(t, withdrawn, "the withdrawal")
	select {
	case <-w.Target().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the evacuation did not stop after the cancellation")
	}
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, ev := range pevents {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{pipeline.EvAssessed, pipeline.EvApplied, pipeline.EvAssessed, pipeline.EvApplied, pipeline.EvRejected, pipeline.EvCancelled, pipeline.EvApplied}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("pipeline events %v, want %v", kinds, want)
	}
	var deadlineMoved bool
	for _, ev := range timeline {
		if ev.Kind == executor.EvDeadline && strings.HasPrefix(ev.Detail, "kochi deadline now") {
			deadlineMoved = true
		}
	}
	if !deadlineMoved {
		t.Error("the update did not move the executor's deadline")
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func waitChan(t *testing.T, c chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestSimLosesSiteAtDeadline: an evacuation that cannot finish loses
// the site when its deadline passes.
func TestSimLosesSiteAtDeadline(t *testing.T) {
	fed := controllertest.Nankai(t)
	lost := make(chan string, 4)
	w, err := NewSim(SimConfig{Federation: fed, Speed: 600, Epoch: evacsim.Epoch,
		OnSiteLost: func(_ time.Time, site string) { lost <- site }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := w.Target().Apply(map[string]time.Time{"kochi": w.Now().Add(time.Minute)}, nil, false); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-lost:
		if s != "kochi" {
			t.Errorf("lost %s", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("site not lost")
	}
	var left int
	w.Do(func() {
		for _, r := range w.Target().Reports()[0].VMs {
			switch r.Status {
			case executor.StatusMissed, executor.StatusUnsaved, executor.StatusLost:
				left++
			}
		}
	})
	if left == 0 {
		t.Error("every VM made a one-minute deadline")
	}
}

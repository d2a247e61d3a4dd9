package libvirt

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
)

// TestWaitHostsOneDown: with one daemon gone and one that never answers,
// WaitHosts reports the gone one down as soon as its retry failed, the
// silent one at the timeout, and the others up; the up hosts work, the
// down ones refuse at once.
func TestWaitHostsOneDown(t *testing.T) {
	w := newWorld("a", "b", "gone", "silent")
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) }) // after the driver's Close (cleanups run last-in first-out)
	w.hang["test:///silent"] = hang
	w.host("a").add("vm", 64)
	d := w.newDriver(t, nil)
	w.mu.Lock()
	delete(w.hosts, "test:///gone") // its daemon stopped before the run
	w.mu.Unlock()

	const timeout = 300 * time.Millisecond
	start := time.Now()
	states := d.WaitHosts(context.Background(), timeout)
	took := time.Since(start)
	if took < timeout || took > timeout+time.Second {
		t.Errorf("WaitHosts took %v; want about the %v timeout (the silent host)", took, timeout)
	}
	want := map[string]bool{"a": true, "b": true, "gone": false, "silent": false}
	if len(states) != len(want) {
		t.Fatalf("states %+v", states)
	}
	for i, st := range states {
		if i > 0 && states[i-1].Host >= st.Host {
			t.Errorf("not sorted: %+v", states)
		}
		if st.Up != want[st.Host] {
			t.Errorf("%s: up = %v, want %v (%+v)", st.Host, st.Up, want[st.Host], st)
		}
		if !st.Up && (st.Reason == "" || strings.Contains(st.Reason, "\n") || len(st.Reason) > 120) {
			t.Errorf("%s: reason %q: want one short line", st.Host, st.Reason)
		}
	}
	if r := states[2].Reason; !strings.Contains(r, "no daemon") {
		t.Errorf("gone: reason %q", r)
	}
	if r := states[3].Reason; !strings.Contains(r, "no connection within") {
		t.Errorf("silent: reason %q", r)
	}
	if _, err := d.ListDomains(context.Background(), "a"); err != nil {
		t.Errorf("up host: %v", err)
	}
	start = time.Now()
	if _, err := d.ListDomains(context.Background(), "gone"); !errors.Is(err, hypervisor.ErrHostUnreachable) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("down host: %v after %v; want ErrHostUnreachable at once", err, time.Since(start))
	}
}

// TestWaitHostsAllUpReturnsAtOnce: no timeout is spent when every host
// answers.
func TestWaitHostsAllUpReturnsAtOnce(t *testing.T) {
	w := newWorld("a", "b")
	d := w.newDriver(t, nil)
	start := time.Now()
	for _, st := range d.WaitHosts(context.Background(), time.Minute) {
		if !st.Up {
			t.Errorf("%+v", st)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
}

// TestCloseWithHungDial: Close does not wait for a dial that hangs.
func TestCloseWithHungDial(t *testing.T) {
	w := newWorld("silent")
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	w.hang["test:///silent"] = hang
	d := w.newDriver(t, nil)
	done := make(chan struct{})
	go func() { _ = d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a hung dial")
	}
}

func TestShortReason(t *testing.T) {
	long := errors.New(strings.Repeat("x ", 200))
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("could not read tls client cert: %w", &os.PathError{Op: "open", Path: "/etc/pki/libvirt/clientcert.pem", Err: os.ErrNotExist}),
			"TLS: /etc/pki/libvirt/clientcert.pem: file does not exist"},
		{fmt.Errorf("dial: %w", &net.DNSError{Name: "h1.example", Err: "no such host"}), "cannot resolve h1.example: no such host"},
		{&net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: "/run/sock", Net: "unix"}, Err: os.NewSyscallError("connect", errors.New("connection refused"))},
			"dial /run/sock: connection refused"},
		{errors.New("a\n  b"), "a b"},
	} {
		if got := ShortReason(c.err); got != c.want {
			t.Errorf("ShortReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if got := ShortReason(long); len([]rune(got)) != 120 {
		t.Errorf("long reason kept %d runes", len([]rune(got)))
	}
}

func TestSampleNonZero(t *testing.T) {
	w := newWorld("a")
	w.host("a").add("vm", 128)
	d := w.driver(t, nil)
	f, err := d.SampleNonZero(context.Background(), "a", "vm", 8, rand.New(rand.NewPCG(1, 2)))
	if err != nil || f != 0.25 {
		t.Fatalf("SampleNonZero = %v, %v; want 0.25", f, err)
	}
	if _, err := d.SampleNonZero(context.Background(), "a", "nope", 8, rand.New(rand.NewPCG(1, 2))); !errors.Is(err, hypervisor.ErrNoSuchDomain) {
		t.Errorf("unknown domain: %v", err)
	}
}

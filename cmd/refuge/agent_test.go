package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePorts returns n UDP ports free on loopback now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var conns []*net.UDPConn
	var ports []int
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	return ports
}

// TestAgentCommands runs `refuge agent controller` and four `refuge agent`
// processes' commands in-process, stops one agent and expects the
// controller to report it failed.
func TestAgentCommands(t *testing.T) {
	defer goleak.VerifyNone(t)
	ports := freePorts(t, 5)
	ctrl := fmt.Sprintf("127.0.0.1:%d", ports[0])
	dir := t.TempDir()
	var roster strings.Builder
	roster.WriteString("hosts:\n")
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&roster, "  - {id: %d, name: h%d, addr: \"127.0.0.1:%d\"}\n", i, i, ports[i])
	}
	rpath := filepath.Join(dir, "roster.yaml")
	if err := os.WriteFile(rpath, []byte(roster.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, out *syncBuffer, args ...string) chan error {
		done := make(chan error, 1)
		root := newRoot(out, out)
		root.SetArgs(args)
		go func() { done <- root.ExecuteContext(ctx) }()
		return done
	}
	var cancels []context.CancelFunc
	var dones []chan error
	for i := 1; i <= 4; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		dones = append(dones, run(ctx, &syncBuffer{}, "agent", "--id", fmt.Sprint(i), "--listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--controller", ctrl, "--interval", "100ms", "--timeout", "2s"))
	}
	cctx, ccancel := context.WithCancel(context.Background())
	var cout syncBuffer
	cdone := run(cctx, &cout, "agent", "controller", "--roster", rpath, "--listen", ctrl, "--interval", "100ms", "--timeout", "2s", "--json")
	// Agent h4 is a queen on the 4×4 board of 4 hosts (every host is);
	// stop it: the controller notices.
	cancels[3]()
	if err := <-dones[3]; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(cout.String(), `"kind":"failed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no failure reported; controller output:\n%s", cout.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if !strings.Contains(cout.String(), `"name":"h4"`) {
		t.Errorf("failure of h4 not reported:\n%s", cout.String())
	}
	ccancel()
	if err := <-cdone; err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cancels[i]()
		if err := <-dones[i]; err != nil {
			t.Fatal(err)
		}
	}
}

func TestAgentBadInput(t *testing.T) {
	dir := t.TempDir()
	dup := filepath.Join(dir, "dup.yaml")
	if err := os.WriteFile(dup, []byte("hosts:\n  - {id: 1, name: a, addr: \"127.0.0.1:9\"}\n  - {id: 1, name: b, addr: \"127.0.0.1:10\"}\n  - {id: 2, name: c, addr: \"nowhere\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "agent", "controller", "--roster", dup, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "hosts[2].addr") {
		t.Errorf("bad roster: %v", err)
	}
	small := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(small, []byte("hosts:\n  - {id: 1, name: a, addr: \"127.0.0.1:9\"}\n  - {id: 2, name: b, addr: \"127.0.0.1:10\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLI(t, "agent", "controller", "--roster", small, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "master-slave") {
		t.Errorf("2 hosts on the queen scheme: %v", err)
	}
	if _, _, err := runCLI(t, "agent", "--id", "1", "--controller", "not an address", "--listen", "127.0.0.1:0"); err == nil {
		t.Error("bad controller address accepted")
	}
	if _, _, err := runCLI(t, "agent", "--id", "1", "--detector", "psychic", "--listen", "127.0.0.1:0", "--controller", "127.0.0.1:9"); err == nil {
		t.Error("unknown detector accepted")
	}
	if _, _, err := runCLI(t, "agent", "--id", "1", "--listen", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "controller") {
		t.Errorf("agent without --controller: %v", err)
	}
}

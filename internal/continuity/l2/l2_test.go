package l2

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	osaka = Site{Name: "osaka", Underlay: netip.MustParseAddr("192.0.2.1")}
	tokyo = Site{Name: "tokyo", Underlay: netip.MustParseAddr("192.0.2.2")}
)

func TestPlan(t *testing.T) {
	p, err := NewPlan(Config{VNI: 42}, osaka, []Site{tokyo})
	if err != nil {
		t.Fatal(err)
	}
	if p.MTU != 1450 || p.Overhead != 50 {
		t.Fatalf("mtu %d overhead %d", p.MTU, p.Overhead)
	}
	script := Script(p.Up)
	for _, want := range []string{
		"ip link add vx-refuge type vxlan id 42 local 192.0.2.1 dstport 4789\n",
		"bridge fdb append 00:00:00:00:00:00 dev vx-refuge dst 192.0.2.2\n",
		"ip link set vx-refuge mtu 1450 master br-refuge\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	key := bytes.Repeat([]byte{7}, 48)
	p, err = NewPlan(Config{VNI: 42, ESPKey: key}, osaka, []Site{tokyo})
	if err != nil {
		t.Fatal(err)
	}
	if p.MTU != 1390 || !strings.Contains(Script(p.Up), "enc 'cbc(aes)' 0x0707") {
		t.Fatalf("esp plan: mtu %d\n%s", p.MTU, Script(p.Up))
	}
	// Both ends derive the same SPI for each direction.
	q, _ := NewPlan(Config{VNI: 42, ESPKey: key}, tokyo, []Site{osaka})
	spis := func(p Plan) (out []string) {
		for _, c := range p.Up {
			if len(c) > 11 && c[2] == "state" {
				out = append(out, c[5]+">"+c[7]+" "+c[11])
			}
		}
		return out
	}
	a, b := spis(p), spis(q)
	if len(a) != 2 || a[0] != b[1] || a[1] != b[0] {
		t.Fatalf("SPIs differ: %v vs %v", a, b)
	}
	if MTU(9000, true, true) != 9000-70-60 {
		t.Fatal("ipv6 jumbo mtu")
	}
	for _, bad := range []struct {
		cfg   Config
		peers []Site
		want  string
	}{
		{Config{}, []Site{tokyo}, "vni 0"},
		{Config{VNI: 1, Device: "a-very-long-device-name"}, []Site{tokyo}, "at most 15"},
		{Config{VNI: 1, ESPKey: []byte{1}}, []Site{tokyo}, "48 bytes"},
		{Config{VNI: 1}, nil, "no peer"},
		{Config{VNI: 1}, []Site{{Name: "v6", Underlay: netip.MustParseAddr("2001:db8::1")}}, "same family"},
		{Config{VNI: 1, UnderlayMTU: 1300}, []Site{tokyo}, "below 1280"},
	} {
		if _, err := NewPlan(bad.cfg, osaka, bad.peers); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err %v, want %q", bad.cfg, err, bad.want)
		}
	}
}

// inNetns runs f on an OS thread moved into the named network namespace;
// the thread is discarded afterwards (it stays locked), so no other
// goroutine ever runs in that namespace by accident. Sockets f creates
// belong to the namespace.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestExtendAcrossSites builds two site namespaces joined by a veth
// "WAN", applies each site's plan (with and without ESP), moves 4 MiB over
// TCP between the bridges' addresses, checks the MTU, and removes it all.
func TestExtendAcrossSites(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("REFUGE_INTEGRATION") == "1" {
			t.Fatal("REFUGE_INTEGRATION=1 but the test needs root to create network namespaces")
		}
		t.Skip("integration test skipped: needs root to create network namespaces")
	}
	for _, esp := range []bool{false, true} {
		t.Run(fmt.Sprintf("esp=%v", esp), func(t *testing.T) {
			id := fmt.Sprintf("%d%v", os.Getpid()%100000, map[bool]string{false: "p", true: "e"}[esp])
			nsA, nsB := "rfg-l2a"+id, "rfg-l2b"+id
			for _, ns := range []string{nsA, nsB} {
				run(t, "ip", "netns", "add", ns)
				t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
			}
			run(t, "ip", "link", "add", "wa"+id, "netns", nsA, "type", "veth", "peer", "name", "wb"+id, "netns", nsB)
			for ns, a := range map[string]string{nsA: "wa" + id, nsB: "wb" + id} {
				under := map[string]string{nsA: "172.30.0.1/24", nsB: "172.30.0.2/24"}[ns]
				run(t, "ip", "-n", ns, "addr", "add", under, "dev", a)
				run(t, "ip", "-n", ns, "link", "set", a, "up")
				run(t, "ip", "-n", ns, "link", "set", "lo", "up")
			}
			a := Site{Name: "a", Underlay: netip.MustParseAddr("172.30.0.1")}
			b := Site{Name: "b", Underlay: netip.MustParseAddr("172.30.0.2")}
			cfg := Config{VNI: 4242}
			if esp {
				cfg.ESPKey = make([]byte, 48)
				_, _ = rand.Read(cfg.ESPKey)
			}
			ctx := context.Background()
			if esp {
				probe := []string{"ip", "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x1000", "mode", "transport", "enc", "cbc(aes)", "0x00112233445566778899aabbccddeeff"}
				if err := Apply(ctx, nsA, [][]string{probe}, false); err != nil {
					t.Skipf("this kernel cannot do ESP (the plan is generated but not applied): %v", err)
				}
				run(t, "ip", "-n", nsA, "xfrm", "state", "flush")
			}
			cfgA, cfgB := cfg, cfg
			cfgA.BridgeAddr = netip.MustParsePrefix("10.99.0.1/24")
			cfgB.BridgeAddr = netip.MustParsePrefix("10.99.0.2/24")
			pa, err := NewPlan(cfgA, a, []Site{b})
			if err != nil {
				t.Fatal(err)
			}
			pb, err := NewPlan(cfgB, b, []Site{a})
			if err != nil {
				t.Fatal(err)
			}
			for ns, p := range map[string]Plan{nsA: pa, nsB: pb} {
				if err := Apply(ctx, ns, p.Up, false); err != nil {
					t.Fatal(err)
				}
			}
			if out := run(t, "ip", "-n", nsA, "link", "show", "br-refuge"); !strings.Contains(out, fmt.Sprintf("mtu %d", pa.MTU)) {
				t.Fatalf("bridge MTU: %s", out)
			}

			// 4 MiB from site A's bridge address to site B's, through the
			// VXLAN (and ESP).
			var ln net.Listener
			if err := inNetns(nsB, func() (err error) { ln, err = net.Listen("tcp", "10.99.0.2:7000"); return err }); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan int64, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- -1
					return
				}
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				got <- n
			}()
			const size = 4 << 20
			err = inNetns(nsA, func() error {
				c, err := net.DialTimeout("tcp", "10.99.0.2:7000", 5*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				_, err = io.CopyN(c, rand.Reader, size)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := <-got; n != size {
				t.Fatalf("received %d bytes, want %d", n, size)
			}
			if esp {
				// The ESP state carried the bytes.
				out := run(t, "ip", "-n", nsA, "-s", "xfrm", "state")
				if !strings.Contains(out, "cbc(aes)") || strings.Contains(out, "current:\n    0(bytes)") {
					t.Fatalf("ESP not used:\n%s", out)
				}
			}
			for ns, p := range map[string]Plan{nsA: pa, nsB: pb} {
				if err := Apply(ctx, ns, p.Down, true); err != nil {
					t.Fatal(err)
				}
				if out := run(t, "ip", "-n", ns, "link", "show"); strings.Contains(out, "vx-refuge") || strings.Contains(out, "br-refuge") {
					t.Fatalf("devices left after Down:\n%s", out)
				}
				if out := run(t, "ip", "-n", ns, "xfrm", "state"); strings.TrimSpace(out) != "" {
					t.Fatalf("xfrm state left after Down:\n%s", out)
				}
			}
		})
	}
}

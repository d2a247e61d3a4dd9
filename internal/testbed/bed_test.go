package testbed

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/guest"
)

// integration skips the test unless REFUGE_INTEGRATION=1 (set by .ci/run).
func integration(t *testing.T) guest.Image {
	t.Helper()
	if os.Getenv("REFUGE_INTEGRATION") != "1" {
		t.Skip("integration test: set REFUGE_INTEGRATION=1 (needs root, libvirtd, QEMU; see docs/libvirt.md)")
	}
	img, err := guest.Build(context.Background(), guest.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestDomainXML(t *testing.T) {
	x, err := DomainXML(GuestSpec{Name: "g1", DiskMiB: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<domain type=\"qemu\">", "refuge.mb=32 refuge.rate=4 refuge.verify=1", "org.qemu.guest_agent.0", "g1.qcow2", "g1-serial.log"} {
		if !strings.Contains(x, want) {
			t.Errorf("domain XML lacks %q:\n%s", want, x)
		}
	}
}

func TestTrouble(t *testing.T) {
	if got := Trouble("memchk OK t=1\n[ 3.1] Kernel panic - not syncing: Fatal exception in interrupt\n"); !strings.Contains(got, "Kernel panic") {
		t.Errorf("Trouble = %q", got)
	}
	if got := Trouble("memchk OK t=1\nmemchk OK t=2\n"); got != "" {
		t.Errorf("Trouble = %q, want none", got)
	}
}

// TestBedMigrateWithVirsh checks the bed itself: two sites, a guest,
// a peer-to-peer migration with virsh across the relay, the guest's
// memory check on the destination, and a clean teardown.
func TestBedMigrateWithVirsh(t *testing.T) {
	img := integration(t)
	ctx := context.Background()
	bed, err := Start(ctx, Config{Sites: 2, Guest: img, Logf: t.Logf,
		Links: []LinkSpec{{A: 0, B: 1, RTT: 4 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := bed.Dir()
	nsA := bed.Sites[0].NetNS
	t.Cleanup(func() {
		if err := bed.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("work directory %s left behind", dir)
		}
		if err := run(context.Background(), "ip", "netns", "pids", nsA); err == nil {
			t.Errorf("namespace %s left behind", nsA)
		}
	})
	a, b := bed.Sites[0], bed.Sites[1]
	if err := a.Exec(ctx, "bash", "-c", "exec 3<>/dev/tcp/"+b.Addr+"/16509"); err != nil {
		t.Fatalf("sites cannot reach each other: %v", err)
	}
	g := GuestSpec{Name: "smoke"}
	if err := a.StartGuest(ctx, g); err != nil {
		t.Fatal(err)
	}
	off := b.ConsoleSize(g.Name)
	t0 := time.Now()
	if out, err := a.VirshOut(ctx, "migrate", "--p2p", "--persistent", "--undefinesource", g.Name, b.PeerURI()); err != nil {
		t.Fatalf("virsh migrate: %v %s", err, out)
	}
	t.Logf("non-live migration took %v", time.Since(t0))
	if _, err := b.WaitConsole(ctx, g.Name, off, "memchk OK", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := a.State(ctx, g.Name); st != "absent" {
		t.Errorf("source still has the domain: %s", st)
	}
	st := bed.Links[0].Relay.Stats()
	t.Logf("relay: %+v", st)
	if st[0].Bytes < 1<<20 {
		t.Errorf("migration did not go through the relay: %+v", st)
	}
}

package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"
)

// GuestSpec describes a test guest.
type GuestSpec struct {
	Name      string
	MemoryMiB int // default 128
	// CheckMiB is the memory guestd keeps patterned and verifies (default 32).
	CheckMiB int
	// DirtyMiBps is guestd's rewrite rate (default 4; FlatOut for as fast as it can).
	DirtyMiBps int
	FlatOut    bool
	// VerifyEvery is guestd's full-check period in seconds (default 1; a
	// check reads all of CheckMiB, which costs CPU under TCG).
	VerifyEvery int
	// DiskMiB > 0 gives the guest a local qcow2 disk of that size, which
	// guestd also rewrites and checks (copy-storage migrations).
	DiskMiB int
	// NoAgent leaves out the guest-agent channel.
	NoAgent bool
	// KernelArgs are appended to the guest kernel's command line.
	KernelArgs string
	// Machine is the QEMU machine type (default "pc").
	Machine string
}

func (g *GuestSpec) defaults() {
	if g.MemoryMiB == 0 {
		g.MemoryMiB = 128
	}
	if g.CheckMiB == 0 {
		g.CheckMiB = 32
	}
	if g.Machine == "" {
		g.Machine = "pc"
	}
	if g.VerifyEvery <= 0 {
		g.VerifyEvery = 1
	}
	if g.DirtyMiBps == 0 && !g.FlatOut {
		g.DirtyMiBps = 4
	}
}

// DomainXML returns the libvirt domain definition of the guest: TCG
// (type qemu), direct kernel boot from the site's /var/lib/libvirt/boot,
// serial console to /var/log/libvirt/qemu/NAME-serial.log (per site, so
// the console continues in the destination's file after a migration), a
// guest-agent channel, no balloon.
func DomainXML(g GuestSpec) (string, error) {
	g.defaults()
	rate := g.DirtyMiBps
	if g.FlatOut {
		rate = 0
	}
	d := &libvirtxml.Domain{
		Type:   "qemu",
		Name:   g.Name,
		Memory: &libvirtxml.DomainMemory{Value: uint(g.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: 1},
		OS: &libvirtxml.DomainOS{
			Type:    &libvirtxml.DomainOSType{Arch: "x86_64", Machine: g.Machine, Type: "hvm"},
			Kernel:  "/var/lib/libvirt/boot/vmlinuz",
			Initrd:  "/var/lib/libvirt/boot/initrd.gz",
			Cmdline: strings.TrimSpace(fmt.Sprintf("console=ttyS0 quiet refuge.mb=%d refuge.rate=%d refuge.verify=%d %s", g.CheckMiB, rate, g.VerifyEvery, g.KernelArgs)),
		},
		CPU:        &libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: &libvirtxml.DomainCPUModel{Value: "qemu64", Fallback: "allow"}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Emulator: "/usr/bin/qemu-system-x86_64",
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{
					Path: "/var/log/libvirt/qemu/" + g.Name + "-serial.log", Append: "on"}},
				Target: &libvirtxml.DomainSerialTarget{Port: new(uint)},
			}},
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
		},
	}
	if g.DiskMiB > 0 {
		d.Devices.Disks = []libvirtxml.DomainDisk{{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Cache: "none"},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: "/var/lib/libvirt/images/" + g.Name + ".qcow2"}},
			Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
		}}
	}
	if !g.NoAgent {
		d.Devices.Channels = []libvirtxml.DomainChannel{{
			Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind"}},
			Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: "org.qemu.guest_agent.0"}},
		}}
	}
	return d.Marshal()
}

// CreateDisk creates the guest's qcow2 image on the site (a copy-storage
// destination needs an image of the same size to exist).
func (s *Site) CreateDisk(ctx context.Context, name string, mib int) error {
	return run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", s.Path("/var/lib/libvirt/images/"+name+".qcow2"), fmt.Sprintf("%dM", mib))
}

// DefineGuest defines (persistently) the guest on the site without starting it.
func (s *Site) DefineGuest(ctx context.Context, g GuestSpec) error {
	g.defaults()
	x, err := DomainXML(g)
	if err != nil {
		return fmt.Errorf("testbed: guest %s: %w", g.Name, err)
	}
	if g.DiskMiB > 0 {
		if err := s.CreateDisk(ctx, g.Name, g.DiskMiB); err != nil {
			return err
		}
	}
	f := filepath.Join(s.Dir, g.Name+".xml")
	if err := os.WriteFile(f, []byte(x), 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return s.Virsh(ctx, "define", f)
}

// StartGuest defines and starts the guest, and waits until guestd reports
// its first memory check.
func (s *Site) StartGuest(ctx context.Context, g GuestSpec) error {
	if err := s.DefineGuest(ctx, g); err != nil {
		return err
	}
	off := s.ConsoleSize(g.Name)
	if err := s.Virsh(ctx, "start", g.Name); err != nil {
		return err
	}
	_, err := s.WaitConsole(ctx, g.Name, off, "memchk OK", 90*time.Second)
	return err
}

// ConsolePath is the host path of the guest's serial log on the site.
func (s *Site) ConsolePath(name string) string {
	return s.Path("/var/log/libvirt/qemu/" + name + "-serial.log")
}

// ConsoleSize is the current length of the guest's serial log on the site
// (an offset for WaitConsole and ConsoleSince).
func (s *Site) ConsoleSize(name string) int64 {
	fi, err := os.Stat(s.ConsolePath(name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// ConsoleSince returns the serial log from offset on.
func (s *Site) ConsoleSince(name string, off int64) string {
	b, err := os.ReadFile(s.ConsolePath(name))
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// WaitConsole polls the guest's serial log on the site until a line after
// offset contains want, or a panic/corruption appears, or timeout passes.
func (s *Site) WaitConsole(ctx context.Context, name string, off int64, want string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		out := s.ConsoleSince(name, off)
		if strings.Contains(out, want) {
			return out, nil
		}
		if bad := Trouble(out); bad != "" {
			return out, fmt.Errorf("testbed: guest %s on %s: %s", name, s.Name, bad)
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("testbed: guest %s on %s: no %q on the console within %v; tail: %s", name, s.Name, want, timeout, tail(out, 600))
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-tick.C:
		}
	}
}

var troubleRE = regexp.MustCompile(`(?m)^.*(memchk CORRUPT|diskchk CORRUPT|Kernel panic|BUG: |Oops|general protection fault).*$`)

// Trouble returns the first console line that shows memory corruption or a
// guest kernel failure, or "".
func Trouble(console string) string {
	return troubleRE.FindString(console)
}

// CountOK counts "memchk OK" lines.
func CountOK(console string) int { return strings.Count(console, "memchk OK") }

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// State returns the domain's state on the site as virsh prints it
// ("running", "shut off", …) or "absent".
func (s *Site) State(ctx context.Context, name string) string {
	out, err := s.VirshOut(ctx, "domstate", name)
	if err != nil {
		return "absent"
	}
	return strings.TrimSpace(out)
}

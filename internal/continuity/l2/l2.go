// Package l2 extends a layer-2 segment between sites so that a migrated VM
// keeps its IP address: a Linux bridge per site joined to the other sites
// by a VXLAN device (RFC 7348, unicast with head-end replication to every
// peer), optionally protected by IPsec ESP in transport mode (ip xfrm).
// Open vSwitch and 802.1Q devices are not needed.
//
// Plan generates the ip(8)/bridge(8) commands for one site, to bring the
// extension up and to take it down again; Apply runs them. The overlay's
// MTU is the underlay's minus the encapsulation (MTU below): VMs on the
// bridge must use it (or the underlay must carry jumbo frames).
package l2

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os/exec"
	"strings"
)

// Encapsulation overheads in bytes.
const (
	// VXLANv4 is outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
	VXLANv4 = 50
	// VXLANv6 is the same over an IPv6 underlay (outer header 40).
	VXLANv6 = 70
	// ESPTransport bounds ESP in transport mode with AES-128-CBC and
	// HMAC-SHA-256-128 (RFC 4868): SPI+sequence (8) + IV (16) + padding to
	// the 16-byte block (≤ 15) + pad length and next header (2) + ICV (16)
	// = 57, rounded up to 60. (AES-GCM would need 37, but the kernel here
	// has no gcm(aes).)
	ESPTransport = 60
)

// Site is one end of the extension.
type Site struct {
	Name string
	// Underlay is the site's address on the WAN (the VXLAN tunnel end).
	Underlay netip.Addr
}

// Config describes the segment.
type Config struct {
	// VNI is the VXLAN network identifier (1 … 2^24−1).
	VNI uint32
	// Port is the VXLAN UDP port (default 4789).
	Port uint16
	// Bridge and Device name the bridge and the VXLAN device (defaults
	// "br-refuge" and "vx-refuge"; at most 15 characters).
	Bridge, Device string
	// UnderlayMTU is the WAN path's MTU (default 1500).
	UnderlayMTU int
	// BridgeAddr, when valid, is given to the bridge (for tests and for
	// a site-local gateway on the segment).
	BridgeAddr netip.Prefix
	// ESPKey, when set, protects the VXLAN packets between sites with ESP
	// in transport mode, AES-128-CBC with HMAC-SHA-256: 48 bytes, 16 for
	// the cipher then 32 for the MAC, the same at every site. Static keys suit a drill; in
	// production let an IKE daemon (strongSwan) negotiate them.
	ESPKey []byte
}

// Plan is the commands for one site.
type Plan struct {
	// Up and Down are argument lists for ip(8) or bridge(8) (the first
	// element names the program).
	Up, Down [][]string
	// MTU is the overlay's MTU: what VMs on the bridge must use.
	MTU int
	// Overhead is the encapsulation's size in bytes.
	Overhead int
}

// MTU returns the overlay MTU for an underlay MTU.
func MTU(underlay int, ipv6, esp bool) int {
	o := VXLANv4
	if ipv6 {
		o = VXLANv6
	}
	if esp {
		o += ESPTransport
	}
	return underlay - o
}

func (c *Config) defaults() {
	if c.Port == 0 {
		c.Port = 4789
	}
	if c.Bridge == "" {
		c.Bridge = "br-refuge"
	}
	if c.Device == "" {
		c.Device = "vx-refuge"
	}
	if c.UnderlayMTU == 0 {
		c.UnderlayMTU = 1500
	}
}

// NewPlan builds the plan of local, with tunnels to every peer.
func NewPlan(cfg Config, local Site, peers []Site) (Plan, error) {
	cfg.defaults()
	var errs []error
	if cfg.VNI == 0 || cfg.VNI >= 1<<24 {
		errs = append(errs, fmt.Errorf("vni %d must be in 1…16777215", cfg.VNI))
	}
	for _, n := range []string{cfg.Bridge, cfg.Device} {
		if len(n) > 15 || strings.ContainsAny(n, " /") {
			errs = append(errs, fmt.Errorf("device name %q must be at most 15 characters, without spaces or slashes", n))
		}
	}
	if cfg.ESPKey != nil && len(cfg.ESPKey) != 48 {
		errs = append(errs, fmt.Errorf("esp key must be 48 bytes (16 for AES-128, 32 for HMAC-SHA-256), got %d", len(cfg.ESPKey)))
	}
	if !local.Underlay.IsValid() {
		errs = append(errs, fmt.Errorf("site %s: no underlay address", local.Name))
	}
	if len(peers) == 0 {
		errs = append(errs, errors.New("no peer sites"))
	}
	for _, p := range peers {
		if !p.Underlay.IsValid() || p.Underlay.Is4() != local.Underlay.Is4() || p.Underlay == local.Underlay {
			errs = append(errs, fmt.Errorf("peer %s: underlay %v must be a valid address of the same family as %v and differ from it", p.Name, p.Underlay, local.Underlay))
		}
	}
	p := Plan{MTU: MTU(cfg.UnderlayMTU, local.Underlay.Is6(), cfg.ESPKey != nil)}
	p.Overhead = cfg.UnderlayMTU - p.MTU
	if p.MTU < 1280 {
		errs = append(errs, fmt.Errorf("overlay MTU %d (underlay %d − %d) is below 1280, the IPv6 minimum", p.MTU, cfg.UnderlayMTU, p.Overhead))
	}
	if err := errors.Join(errs...); err != nil {
		return Plan{}, fmt.Errorf("l2: %w", err)
	}
	mtu := fmt.Sprint(p.MTU)
	port := fmt.Sprint(cfg.Port)
	p.Up = [][]string{
		{"ip", "link", "add", cfg.Bridge, "type", "bridge"},
		{"ip", "link", "set", cfg.Bridge, "mtu", mtu},
		{"ip", "link", "add", cfg.Device, "type", "vxlan", "id", fmt.Sprint(cfg.VNI), "local", local.Underlay.String(), "dstport", port},
		{"ip", "link", "set", cfg.Device, "mtu", mtu, "master", cfg.Bridge},
	}
	for _, peer := range peers {
		// Head-end replication: broadcast, unknown and multicast frames
		// go to every peer; learning fills in the rest.
		p.Up = append(p.Up, []string{"bridge", "fdb", "append", "00:00:00:00:00:00", "dev", cfg.Device, "dst", peer.Underlay.String()})
	}
	if cfg.ESPKey != nil {
		enc, auth := "0x"+hex.EncodeToString(cfg.ESPKey[:16]), "0x"+hex.EncodeToString(cfg.ESPKey[16:])
		for _, peer := range peers {
			for _, dir := range []struct {
				src, dst netip.Addr
				dir      string
			}{{local.Underlay, peer.Underlay, "out"}, {peer.Underlay, local.Underlay, "in"}} {
				spi := fmt.Sprintf("0x%08x", SPI(dir.src, dir.dst, cfg.VNI))
				s, d := dir.src.String(), dir.dst.String()
				p.Up = append(p.Up,
					[]string{"ip", "xfrm", "state", "add", "src", s, "dst", d, "proto", "esp", "spi", spi, "mode", "transport", "enc", "cbc(aes)", enc, "auth-trunc", "hmac(sha256)", auth, "128"},
					[]string{"ip", "xfrm", "policy", "add", "src", s, "dst", d, "proto", "udp", "dport", port, "dir", dir.dir, "tmpl", "src", s, "dst", d, "proto", "esp", "mode", "transport"},
				)
				p.Down = append(p.Down,
					[]string{"ip", "xfrm", "policy", "delete", "src", s, "dst", d, "proto", "udp", "dport", port, "dir", dir.dir},
					[]string{"ip", "xfrm", "state", "delete", "src", s, "dst", d, "proto", "esp", "spi", spi},
				)
			}
		}
	}
	p.Up = append(p.Up, []string{"ip", "link", "set", cfg.Device, "up"}, []string{"ip", "link", "set", cfg.Bridge, "up"})
	if cfg.BridgeAddr.IsValid() {
		p.Up = append(p.Up, []string{"ip", "addr", "add", cfg.BridgeAddr.String(), "dev", cfg.Bridge})
	}
	p.Down = append(p.Down, []string{"ip", "link", "del", cfg.Device}, []string{"ip", "link", "del", cfg.Bridge})
	return p, nil
}

// SPI is the security parameter index of the ESP flow src → dst of a VNI,
// derived the same way at both ends (never below 256, which is reserved).
func SPI(src, dst netip.Addr, vni uint32) uint32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s>%s/%d", src, dst, vni)
	return h.Sum32() | 0x100
}

// Script renders commands as a shell script (one command a line).
func Script(cmds [][]string) string {
	var b strings.Builder
	for _, c := range cmds {
		q := make([]string, len(c))
		for i, a := range c {
			if strings.ContainsAny(a, "()' ") {
				a = "'" + a + "'"
			}
			q[i] = a
		}
		b.WriteString(strings.Join(q, " ") + "\n")
	}
	return b.String()
}

// Apply runs commands in order, inside network namespace netns when it is
// not empty; it stops at the first failure. With ignoreErrors (for Down)
// it runs them all and returns the joined errors.
func Apply(ctx context.Context, netns string, cmds [][]string, ignoreErrors bool) error {
	var errs []error
	for _, c := range cmds {
		args := c[1:]
		if netns != "" {
			args = append([]string{"-n", netns}, args...)
		}
		out, err := exec.CommandContext(ctx, c[0], args...).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("l2: %s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
			if !ignoreErrors {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Package testbed starts a federation of libvirt "sites" on one machine for
// refuge's integration tests: one libvirtd per site, each in its own
// network and mount namespace with its own host UUID, configuration, run,
// state and log directories; sites joined by TAP-device pairs through a
// user-space relay (delay, loss, cut — this kernel has no netem) shaped
// with tc tbf; and tiny TCG guests (package guest) defined and started on
// them. Everything it creates — namespaces, daemons, QEMU processes, TAP
// devices, files — is removed by Close, and stale leftovers of a killed
// run are removed by the next Start.
//
// It needs root, libvirtd (libvirt-daemon, libvirt-daemon-driver-qemu),
// virsh (libvirt-clients), qemu-system-x86, qemu-utils, iproute2 and the
// libvirt-qemu user. See docs/libvirt.md.
package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/refuge-project/refuge/internal/guest"
)

// nsPrefix starts the name of every network namespace a bed creates; the
// owning test process's pid follows, so stale ones can be recognised.
const nsPrefix = "rfgtb"

// LinkSpec describes one inter-site link.
type LinkSpec struct {
	A, B int // site indexes
	// RateMbit shapes each direction with tc tbf (0: unshaped).
	RateMbit float64
	// RTT is emulated by the relay (half of it each way).
	RTT time.Duration
	// Loss is the probability that the relay drops a frame.
	Loss float64
}

// Config describes a bed.
type Config struct {
	// Sites is the number of sites (1–8); their names are site-a, site-b, …
	Sites int
	// Links joins sites; nil joins every pair, unshaped.
	Links []LinkSpec
	// Guest is the built test guest.
	Guest guest.Image
	// Dir is the work directory (default: a new directory under /tmp; unix
	// socket paths must stay short).
	Dir string
	// Logf receives progress messages (optional).
	Logf func(format string, args ...any)
	// KeepAlive sets the p2p migration connection's keep-alive
	// (qemu.conf keepalive_interval, seconds; count is 3). 0: 2 s.
	KeepAlive int
}

// Bed is a running test federation.
type Bed struct {
	Sites  []*Site
	Links  []*Link
	dir    string
	id     string
	logger func(string, ...any)
	img    guest.Image
	mu     sync.Mutex
	done   bool
	unlock func()
}

// Site is one libvirtd in its own namespaces.
type Site struct {
	bed   *Bed
	Index int
	Name  string
	NetNS string
	// Addr is the site's address (on its loopback, routed over the links).
	Addr string
	Dir  string
	UUID string
	cmd  *exec.Cmd
	exit chan struct{}
}

// Link is one inter-site link: a TAP device in each site's namespace, the
// relay between them and tc shaping on both.
type Link struct {
	Spec   LinkSpec
	A, B   *Site
	TapA   string // device name in A's namespace
	TapB   string
	Relay  *Relay
	Subnet string
}

// URI is the libvirt URI a client in the host's namespace uses.
func (s *Site) URI() string { return "qemu+unix:///system?socket=" + s.Socket() }

// Socket is the site libvirtd's read-write unix socket.
func (s *Site) Socket() string { return filepath.Join(s.Dir, "run", "libvirt-sock") }

// PeerURI is the URI other sites' daemons use for peer-to-peer migration.
func (s *Site) PeerURI() string { return "qemu+tcp://" + s.Addr + "/system" }

// Path maps a path inside the site's mount namespace under /var/lib/libvirt
// or /var/log/libvirt to the host's view of it.
func (s *Site) Path(inSite string) string {
	for _, m := range mounts {
		if rest, ok := strings.CutPrefix(inSite, m.target); ok {
			return filepath.Join(s.Dir, m.dir, rest)
		}
	}
	return inSite
}

var mounts = []struct{ dir, target string }{
	{"etc", "/etc/libvirt"},
	{"run", "/run/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"log", "/var/log/libvirt"},
	{"cache", "/var/cache/libvirt"},
}

func (b *Bed) logf(format string, args ...any) {
	if b.logger != nil {
		b.logger(format, args...)
	}
}

// Start builds the bed. On error, everything created so far is removed.
func Start(ctx context.Context, cfg Config) (_ *Bed, err error) {
	if cfg.Sites < 1 || cfg.Sites > 8 {
		return nil, fmt.Errorf("testbed: %d sites: want 1–8", cfg.Sites)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("testbed: needs root (network namespaces, libvirtd)")
	}
	for _, bin := range []string{"ip", "tc", "virsh", "qemu-img", "/usr/sbin/libvirtd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("testbed: %s not found: %w (see docs/libvirt.md for the packages)", bin, err)
		}
	}
	if _, err := user.Lookup("libvirt-qemu"); err != nil {
		// libvirtd's QEMU driver resolves its compiled-in user at start even
		// when qemu.conf says root; libvirt-daemon-system would create it.
		return nil, errors.New("testbed: user libvirt-qemu missing: groupadd -r libvirt-qemu; useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu")
	}
	unlock, err := lockBeds(ctx, cfg.Logf)
	if err != nil {
		return nil, err
	}
	CleanStale(cfg.Logf)
	b := &Bed{unlock: unlock, id: strconv.Itoa(os.Getpid()), logger: cfg.Logf, img: cfg.Guest}
	if cfg.Dir == "" {
		if b.dir, err = os.MkdirTemp("", "rfgtb-"); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
	} else {
		b.dir = cfg.Dir
	}
	// unique per bed within this process
	b.id += "x" + strings.TrimPrefix(filepath.Base(b.dir), "rfgtb-")
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	for i := range cfg.Sites {
		s := &Site{bed: b, Index: i, Name: "site-" + string(rune('a'+i)),
			NetNS: fmt.Sprintf("%s-%s-%c", nsPrefix, b.id, 'a'+i),
			Addr:  fmt.Sprintf("10.78.0.%d", i+1),
			Dir:   filepath.Join(b.dir, "site-"+string(rune('a'+i))),
			UUID:  fmt.Sprintf("%08x-0000-4000-8000-%012x", os.Getpid(), i+1),
		}
		b.Sites = append(b.Sites, s)
		if err := s.configure(cfg); err != nil {
			return nil, err
		}
	}
	links := cfg.Links
	if links == nil {
		for i := range cfg.Sites {
			for j := i + 1; j < cfg.Sites; j++ {
				links = append(links, LinkSpec{A: i, B: j})
			}
		}
	}
	for k, spec := range links {
		if err := b.addLink(k, spec); err != nil {
			return nil, err
		}
	}
	// Daemons start in parallel (each probes QEMU's capabilities first).
	var wg sync.WaitGroup
	errs := make([]error, len(b.Sites))
	for i, s := range b.Sites {
		wg.Go(func() { errs[i] = s.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *Site) configure(cfg Config) error {
	for _, d := range []string{"etc", "run", "lib/boot", "lib/images", "lib/qemu", "log/qemu", "cache"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	ka := cfg.KeepAlive
	if ka <= 0 {
		ka = 2
	}
	files := map[string]string{
		"etc/libvirtd.conf": fmt.Sprintf(`listen_tls = 0
listen_tcp = 1
listen_addr = "0.0.0.0"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
host_uuid = "%s"
max_client_requests = 32
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`, s.UUID),
		"etc/qemu.conf": fmt.Sprintf(`user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
migration_address = "0.0.0.0"
migration_host = "%s"
keepalive_interval = %d
keepalive_count = 3
`, s.Addr, ka),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	if cfg.Guest.Kernel != "" {
		for _, f := range []string{cfg.Guest.Kernel, cfg.Guest.Initrd} {
			if err := linkOrCopy(f, filepath.Join(s.Dir, "lib/boot", filepath.Base(f))); err != nil {
				return err
			}
		}
	}
	if err := run(context.Background(), "ip", "netns", "add", s.NetNS); err != nil {
		return err
	}
	return s.ip("link", "set", "lo", "up")
}

func linkOrCopy(from, to string) error {
	if err := os.Link(from, to); err == nil {
		return nil
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}

func (s *Site) ip(args ...string) error {
	return run(context.Background(), "ip", append([]string{"-n", s.NetNS}, args...)...)
}

// Exec runs a command inside the site's network namespace.
func (s *Site) Exec(ctx context.Context, name string, args ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", s.NetNS, name}, args...)...)
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testbed: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (b *Bed) addLink(k int, spec LinkSpec) error {
	if spec.A < 0 || spec.B < 0 || spec.A >= len(b.Sites) || spec.B >= len(b.Sites) || spec.A == spec.B {
		return fmt.Errorf("testbed: link %d joins sites %d and %d", k, spec.A, spec.B)
	}
	l := &Link{Spec: spec, A: b.Sites[spec.A], B: b.Sites[spec.B],
		TapA: fmt.Sprintf("wan%d", k), TapB: fmt.Sprintf("wan%d", k), Subnet: fmt.Sprintf("10.79.%d", k)}
	// TAP devices are created in the host namespace under unique names,
	// then moved into the sites' namespaces and renamed.
	tmpA, tmpB := fmt.Sprintf("rt%sa%d", b.id, k), fmt.Sprintf("rt%sb%d", b.id, k)
	if len(tmpA) > 15 {
		tmpA, tmpB = fmt.Sprintf("rt%da%d", os.Getpid()%1000000, k), fmt.Sprintf("rt%db%d", os.Getpid()%1000000, k)
	}
	fa, err := openTAP(tmpA)
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	fb, err := openTAP(tmpB)
	if err != nil {
		fa.Close()
		return fmt.Errorf("testbed: %w", err)
	}
	l.Relay = newRelay(fa, fb, uint64(k)+1)
	b.Links = append(b.Links, l)
	for _, end := range []struct {
		s        *Site
		tmp, dev string
		me, peer string
		other    *Site
	}{{l.A, tmpA, l.TapA, l.Subnet + ".1", l.Subnet + ".2", l.B}, {l.B, tmpB, l.TapB, l.Subnet + ".2", l.Subnet + ".1", l.A}} {
		if err := run(context.Background(), "ip", "link", "set", end.tmp, "netns", end.s.NetNS); err != nil {
			return err
		}
		steps := [][]string{
			{"link", "set", end.tmp, "name", end.dev},
			{"addr", "add", end.me + "/24", "dev", end.dev},
			{"link", "set", end.dev, "up"},
			{"route", "add", end.other.Addr + "/32", "via", end.peer},
		}
		for _, st := range steps {
			if err := end.s.ip(st...); err != nil {
				return err
			}
		}
		// the site address on lo, once
		_ = end.s.ip("addr", "add", end.s.Addr+"/32", "dev", "lo")
	}
	l.Relay.SetDelay(spec.RTT / 2)
	l.Relay.SetLoss(spec.Loss)
	return l.SetRate(spec.RateMbit)
}

// SetRate shapes both directions to mbit Mbit/s with tc tbf (0: unshaped).
func (l *Link) SetRate(mbit float64) error {
	l.Spec.RateMbit = mbit
	for _, end := range []struct {
		s   *Site
		dev string
	}{{l.A, l.TapA}, {l.B, l.TapB}} {
		_ = end.s.tc("qdisc", "del", "dev", end.dev, "root")
		if mbit <= 0 {
			continue
		}
		rate := fmt.Sprintf("%dkbit", int(mbit*1000))
		// burst ≥ rate/HZ; queue ≈ 100 ms at the rate (at least 256 KiB)
		burst := max(int(mbit*1e6/8/250), 32*1024)
		limit := max(int(mbit*1e6/8*0.1), 256*1024)
		if err := end.s.tc("qdisc", "replace", "dev", end.dev, "root", "tbf", "rate", rate,
			"burst", strconv.Itoa(burst), "limit", strconv.Itoa(limit)); err != nil {
			return err
		}
	}
	return nil
}

// SetRTT sets the relay's round-trip delay.
func (l *Link) SetRTT(rtt time.Duration) { l.Spec.RTT = rtt; l.Relay.SetDelay(rtt / 2) }

// Cut drops everything on the link (true) or restores it (false).
func (l *Link) Cut(cut bool) { l.Relay.SetCut(cut) }

func (s *Site) tc(args ...string) error {
	return run(context.Background(), "ip", append([]string{"netns", "exec", s.NetNS, "tc"}, args...)...)
}

func (s *Site) start(ctx context.Context) error {
	var script strings.Builder
	for _, m := range mounts {
		fmt.Fprintf(&script, "mkdir -p %s && mount --bind %s %s && ", m.target, shq(filepath.Join(s.Dir, m.dir)), m.target)
	}
	script.WriteString("exec /usr/sbin/libvirtd --listen --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid")
	logf, err := os.Create(filepath.Join(s.Dir, "libvirtd.stdout"))
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	defer logf.Close()
	// ip netns exec gives the daemon its own mount namespace; unshare makes
	// the bind mounts private to it.
	s.cmd = exec.Command("ip", "netns", "exec", s.NetNS, "unshare", "-m", "--propagation", "private", "sh", "-c", script.String())
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("testbed: start libvirtd for %s: %w", s.Name, err)
	}
	s.exit = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exit) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := s.Virsh(ctx, "version"); err == nil {
			s.bed.logf("testbed: %s up (%s, netns %s, %s)", s.Name, s.Addr, s.NetNS, s.Socket())
			// A storage pool over the images directory lets libvirt
			// pre-create a copy-storage migration's destination image.
			if err := s.Virsh(ctx, "pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"); err != nil {
				return err
			}
			return s.Virsh(ctx, "pool-start", "default")
		} else if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(s.Dir, "libvirtd.stdout"))
			return fmt.Errorf("testbed: libvirtd of %s did not answer within 60 s: %w; output: %s", s.Name, err, out)
		}
		select {
		case <-s.exit:
			out, _ := os.ReadFile(filepath.Join(s.Dir, "libvirtd.stdout"))
			lg, _ := os.ReadFile(filepath.Join(s.Dir, "log", "libvirtd.log"))
			return fmt.Errorf("testbed: libvirtd of %s exited: %s %s", s.Name, out, tail(string(lg), 800))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StopDaemon stops the site's libvirtd (SIGTERM, then SIGKILL after 10 s)
// and waits for it to exit, as an operator's `systemctl stop libvirtd`
// would: the QEMU processes it started keep running, and clients find no
// daemon behind the site's socket. Close still cleans the site up.
func (s *Site) StopDaemon() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return fmt.Errorf("testbed: libvirtd of %s was not started", s.Name)
	}
	select {
	case <-s.exit:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("testbed: stop libvirtd of %s: %w", s.Name, err)
	}
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exit
	}
	s.bed.logf("testbed: %s's libvirtd stopped", s.Name)
	return nil
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Virsh runs virsh against the site.
func (s *Site) Virsh(ctx context.Context, args ...string) error {
	_, err := s.VirshOut(ctx, args...)
	return err
}

// VirshOut runs virsh against the site and returns its output.
func (s *Site) VirshOut(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", s.URI()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testbed: virsh %s on %s: %w: %s", strings.Join(args, " "), s.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Dir is the bed's work directory.
func (b *Bed) Dir() string { return b.dir }

// Site returns the site called name, or nil.
func (b *Bed) Site(name string) *Site {
	for _, s := range b.Sites {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// LinkBetween returns the link joining sites a and b, or nil.
func (b *Bed) LinkBetween(a, c *Site) *Link {
	for _, l := range b.Links {
		if (l.A == a && l.B == c) || (l.A == c && l.B == a) {
			return l
		}
	}
	return nil
}

// Close destroys every domain, stops the daemons and every process left in
// the bed's namespaces, deletes the namespaces (and with them the TAP
// devices), stops the relays and removes the work directory. It is safe to
// call more than once.
func (b *Bed) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range b.Sites {
		if s.cmd != nil {
			if out, err := s.VirshOut(ctx, "list", "--all", "--name"); err == nil {
				for _, d := range strings.Fields(out) {
					_ = s.Virsh(ctx, "destroy", d)
					_ = s.Virsh(ctx, "undefine", d)
				}
			}
		}
		killNetNS(s.NetNS)
		if s.exit != nil {
			select {
			case <-s.exit:
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("testbed: libvirtd of %s did not exit", s.Name))
			}
		}
		if err := run(ctx, "ip", "netns", "del", s.NetNS); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	for _, l := range b.Links {
		errs = append(errs, l.Relay.Close())
	}
	defer b.unlock()
	if os.Getenv("REFUGE_TESTBED_KEEP") == "" {
		if err := os.RemoveAll(b.dir); err != nil {
			errs = append(errs, fmt.Errorf("testbed: %w", err))
		}
	} else {
		b.logf("testbed: work directory kept: %s", b.dir)
	}
	return errors.Join(errs...)
}

// killNetNS kills every process in network namespace ns (SIGTERM, then
// SIGKILL): the bed's libvirtd and the QEMU processes it started.
func killNetNS(ns string) {
	pids := func() []int {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			return nil
		}
		var ps []int
		for _, f := range strings.Fields(string(out)) {
			if p, err := strconv.Atoi(f); err == nil && p != os.Getpid() {
				ps = append(ps, p)
			}
		}
		return ps
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		ps := pids()
		if len(ps) == 0 {
			return
		}
		for _, p := range ps {
			_ = syscall.Kill(p, sig)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(pids()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // polling process exit; no event to wait on
		}
	}
}

// CleanStale removes namespaces (and their processes) left by beds whose
// test process no longer runs.
func CleanStale(logf func(string, ...any)) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix+"-") {
			continue
		}
		parts := strings.SplitN(strings.TrimPrefix(f[0], nsPrefix+"-"), "x", 2)
		pid, err := strconv.Atoi(parts[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if logf != nil {
			logf("testbed: removing stale namespace %s", f[0])
		}
		killNetNS(f[0])
		_ = exec.Command("ip", "netns", "del", f[0]).Run()
	}
}

// LockFile serialises beds across processes: `go test ./...` runs test
// binaries in parallel, and two beds on two cores would distort each
// other's timings (and QEMU under TCG needs the CPU).
const LockFile = "/tmp/refuge-testbed.lock"

func lockBeds(ctx context.Context, logf func(string, ...any)) (func(), error) {
	f, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("testbed: lock %s: %w", LockFile, err)
		}
		if !logged && logf != nil {
			logf("testbed: waiting for another test bed to finish (%s)", LockFile)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

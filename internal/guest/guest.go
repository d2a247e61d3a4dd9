// Package guest builds the tiny test guest that refuge's integration tests
// migrate: the Debian cloud kernel (extracted from its package, nothing is
// installed into /boot), and an initramfs of busybox-static plus guestd, a
// static C program that keeps a verifiable memory pattern and reports
// "memchk OK" or "memchk CORRUPT" on the serial console, and answers the
// QEMU guest agent's guest-ping on a virtio-serial channel.
//
// Build needs apt-get (to download the kernel package), dpkg-deb, gcc with
// static libc (libc6-dev), busybox-static, cpio and gzip.
package guest

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed guestd.c.txt
var guestdC []byte

//go:embed init.sh
var initSh []byte

// Modules are the kernel modules the initramfs loads, in order.
var Modules = []string{"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_blk", "virtio_console"}

// KernelMetaPackage is the Debian package whose dependency names the kernel.
const KernelMetaPackage = "linux-image-cloud-amd64"

// Image is a built guest.
type Image struct {
	Kernel string // path of the kernel (bzImage)
	Initrd string // path of the gzip'd initramfs
}

// DefaultDir is where Build puts the guest unless told otherwise:
// $REFUGE_GUEST_DIR, else <user cache dir>/refuge-guest.
func DefaultDir() string {
	if d := os.Getenv("REFUGE_GUEST_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "refuge-guest")
	}
	return filepath.Join(os.TempDir(), "refuge-guest")
}

// Build makes (or reuses) the guest in dir. The kernel package is
// downloaded once; the initramfs is rebuilt when guestd.c or the init
// script change.
func Build(ctx context.Context, dir string) (Image, error) {
	img := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return img, fmt.Errorf("guest: %w", err)
	}
	if err := kernel(ctx, dir); err != nil {
		return img, err
	}
	sum := sha256.New()
	sum.Write(guestdC)
	sum.Write(initSh)
	kver, _ := os.ReadFile(filepath.Join(dir, "kernel.pkg"))
	sum.Write(kver)
	stamp := hex.EncodeToString(sum.Sum(nil))
	if old, err := os.ReadFile(filepath.Join(dir, "initrd.stamp")); err == nil && string(old) == stamp {
		if _, err := os.Stat(img.Initrd); err == nil {
			return img, nil
		}
	}
	if err := initramfs(ctx, dir); err != nil {
		return img, err
	}
	if err := os.WriteFile(filepath.Join(dir, "initrd.stamp"), []byte(stamp), 0o644); err != nil {
		return img, fmt.Errorf("guest: %w", err)
	}
	return img, nil
}

func run(ctx context.Context, dir string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("guest: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// kernel downloads the Debian cloud kernel package and extracts the kernel
// and the modules the guest needs into dir.
func kernel(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "kmod", "virtio_console.ko")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err == nil {
			return nil
		}
	}
	out, err := run(ctx, dir, "apt-cache", "depends", KernelMetaPackage)
	if err != nil {
		return fmt.Errorf("%w (run apt-get update first)", err)
	}
	pkg := ""
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			pkg = f[1]
			break
		}
	}
	if pkg == "" {
		return fmt.Errorf("guest: apt-cache depends %s names no linux-image package (run apt-get update)", KernelMetaPackage)
	}
	tmp, err := os.MkdirTemp(dir, "kpkg-")
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o777); err != nil { // apt's _apt user writes the download
		return fmt.Errorf("guest: %w", err)
	}
	if _, err := run(ctx, tmp, "apt-get", "download", "-q", pkg); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("guest: apt-get download %s left %d .deb files", pkg, len(debs))
	}
	if _, err := run(ctx, tmp, "dpkg-deb", "-x", debs[0], "x"); err != nil {
		return err
	}
	kernels, _ := filepath.Glob(filepath.Join(tmp, "x", "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("guest: package %s holds %d kernels", pkg, len(kernels))
	}
	if err := copyFile(kernels[0], filepath.Join(dir, "vmlinuz")); err != nil {
		return err
	}
	kmod := filepath.Join(dir, "kmod")
	if err := os.MkdirAll(kmod, 0o755); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	found := map[string]bool{}
	err = filepath.WalkDir(filepath.Join(tmp, "x", "lib", "modules"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, m := range Modules {
			if d.Name() == m+".ko" {
				found[m] = true
				return copyFile(p, filepath.Join(kmod, d.Name()))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	var missing []string
	for _, m := range Modules {
		if !found[m] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		// Built into the kernel, then: nothing to load.
		for _, m := range missing {
			_ = os.WriteFile(filepath.Join(kmod, m+".builtin"), nil, 0o644)
		}
	}
	return os.WriteFile(filepath.Join(dir, "kernel.pkg"), []byte(pkg), 0o644)
}

// initramfs compiles guestd and packs the initramfs.
func initramfs(ctx context.Context, dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "guestd.c"), guestdC, 0o644); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if _, err := run(ctx, dir, "gcc", "-O2", "-static", "-o", "guestd", "guestd.c"); err != nil {
		return err
	}
	root := filepath.Join(dir, "root")
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "lib/modules"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("guest: %w", err)
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		bb = "/bin/busybox"
	}
	if out, err := run(ctx, dir, "file", "-L", bb); err == nil && strings.Contains(out, "dynamically linked") {
		return fmt.Errorf("guest: %s is dynamically linked; install busybox-static", bb)
	}
	copies := map[string]string{bb: "bin/busybox", filepath.Join(dir, "guestd"): "guestd"}
	mods, _ := filepath.Glob(filepath.Join(dir, "kmod", "*.ko"))
	for _, m := range mods {
		copies[m] = filepath.Join("lib/modules", filepath.Base(m))
	}
	for from, to := range copies {
		if err := copyFile(from, filepath.Join(root, to)); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := os.Chmod(filepath.Join(root, "guestd"), 0o755); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "init"), initSh, 0o755); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	tmp := filepath.Join(dir, "initrd.gz.tmp")
	if _, err := run(ctx, root, "sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1 > "+shellQuote(tmp)); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "initrd.gz")); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := os.WriteFile(to+".tmp", b, 0o644); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	return nil
}

// ErrNotBuilt is returned by Find when no guest has been built in dir.
var ErrNotBuilt = errors.New("test guest not built")

// Find returns the guest built in dir without building it.
func Find(dir string) (Image, error) {
	img := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz")}
	for _, p := range []string{img.Kernel, img.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return img, fmt.Errorf("guest: %s: %w (go run ./internal/guest/mkguest)", p, ErrNotBuilt)
		}
	}
	return img, nil
}

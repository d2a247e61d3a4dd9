package testbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openTAP creates a TAP device named name in the calling process's network
// namespace and returns it as a non-blocking file (reads go through Go's
// poller, so Close interrupts them). The device can then be moved to
// another namespace with `ip link set NAME netns NS`; the file stays
// attached to it.
func openTAP(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:unix.IFNAMSIZ-1], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETIFF), uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set %s non-blocking: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}

// Relay joins two TAP devices in user space, emulating what this kernel's
// missing netem would: a one-way delay and random loss per direction, and
// a cut (everything dropped). Rate limiting is left to tc (tbf) on the TAP
// devices' egress.
type Relay struct {
	a, b  *os.File
	delay atomic.Int64  // one-way delay, ns
	loss  atomic.Uint64 // loss probability × 2^32
	cut   atomic.Bool
	wg    sync.WaitGroup
	stats [2]RelayStats
	mu    sync.Mutex
}

// RelayStats counts frames in one direction.
type RelayStats struct {
	Frames, Bytes, Dropped uint64
}

type frame struct {
	due  time.Time
	data []byte
}

// queueFrames bounds the frames in flight per direction; beyond it the
// relay drops (a tail-drop queue).
const queueFrames = 8192

func newRelay(a, b *os.File, seed uint64) *Relay {
	r := &Relay{a: a, b: b}
	for dir, pair := range [2][2]*os.File{{a, b}, {b, a}} {
		q := make(chan frame, queueFrames)
		rng := rand.New(rand.NewPCG(seed, uint64(dir)))
		r.wg.Add(2)
		go r.reader(dir, pair[0], q, rng)
		go r.writer(dir, pair[1], q)
	}
	return r
}

func (r *Relay) reader(dir int, in *os.File, q chan<- frame, rng *rand.Rand) {
	defer r.wg.Done()
	defer close(q)
	buf := make([]byte, 65536)
	for {
		n, err := in.Read(buf)
		if err != nil {
			return // closed
		}
		drop := r.cut.Load()
		if p := r.loss.Load(); !drop && p > 0 {
			drop = uint64(rng.Uint32()) < p
		}
		if drop {
			r.count(dir, 0, true)
			continue
		}
		f := frame{due: time.Now().Add(time.Duration(r.delay.Load())), data: append([]byte(nil), buf[:n]...)}
		select {
		case q <- f:
		default:
			r.count(dir, 0, true)
		}
	}
}

func (r *Relay) writer(dir int, out *os.File, q <-chan frame) {
	defer r.wg.Done()
	var t *time.Timer
	for f := range q {
		if d := time.Until(f.due); d > 0 {
			if t == nil {
				t = time.NewTimer(d)
			} else {
				t.Reset(d)
			}
			<-t.C
		}
		if r.cut.Load() {
			r.count(dir, 0, true)
			continue
		}
		if _, err := out.Write(f.data); err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EIO) {
			if errors.Is(err, os.ErrClosed) {
				continue // drain until the reader closes q
			}
		}
		r.count(dir, len(f.data), false)
	}
}

func (r *Relay) count(dir, n int, dropped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.stats[dir]
	if dropped {
		s.Dropped++
		return
	}
	s.Frames++
	s.Bytes += uint64(n)
}

// Stats returns the counters of direction 0 (A→B) and 1 (B→A).
func (r *Relay) Stats() [2]RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// SetDelay sets the one-way delay of both directions (RTT/2).
func (r *Relay) SetDelay(d time.Duration) { r.delay.Store(int64(max(d, 0))) }

// SetLoss sets the probability (0–1) that a frame is dropped.
func (r *Relay) SetLoss(p float64) { r.loss.Store(uint64(min(max(p, 0), 1) * (1 << 32))) }

// SetCut drops every frame (true) or restores the link (false).
func (r *Relay) SetCut(cut bool) { r.cut.Store(cut) }

// Close stops the relay and closes both TAP files.
func (r *Relay) Close() error {
	err := errors.Join(r.a.Close(), r.b.Close())
	r.wg.Wait()
	return err
}

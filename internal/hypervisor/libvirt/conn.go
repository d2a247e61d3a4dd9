package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	lv "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/refuge-project/refuge/internal/hypervisor"
)

// rpc is the part of go-libvirt's client the driver uses; *lv.Libvirt
// implements it, and the unit tests use a fake.
type rpc interface {
	ConnectGetLibVersion() (uint64, error)
	ConnectListAllDomains(needResults int32, flags lv.ConnectListAllDomainsFlags) ([]lv.Domain, uint32, error)
	ConnectGetAllDomainStats(doms []lv.Domain, stats uint32, flags uint32) ([]lv.DomainStatsRecord, error)
	DomainLookupByName(name string) (lv.Domain, error)
	DomainGetState(dom lv.Domain, flags uint32) (int32, int32, error)
	DomainGetInfo(dom lv.Domain) (uint8, uint64, uint64, uint16, uint64, error)
	DomainGetXMLDesc(dom lv.Domain, flags lv.DomainXMLFlags) (string, error)
	DomainGetBlockInfo(dom lv.Domain, path string, flags uint32) (uint64, uint64, uint64, error)
	DomainIsPersistent(dom lv.Domain) (int32, error)
	DomainMigratePerform3Params(dom lv.Domain, dconnuri lv.OptString, params []lv.TypedParam, cookieIn []byte, flags lv.DomainMigrateFlags) ([]byte, error)
	DomainMigrateSetMaxDowntime(dom lv.Domain, downtime uint64, flags uint32) error
	DomainGetJobStats(dom lv.Domain, flags lv.DomainGetJobStatsFlags) (int32, []lv.TypedParam, error)
	DomainMigrateSetMaxSpeed(dom lv.Domain, bandwidth uint64, flags uint32) error
	DomainMigrateStartPostCopy(dom lv.Domain, flags uint32) error
	DomainAbortJob(dom lv.Domain) error
	DomainDestroy(dom lv.Domain) error
	DomainCreate(dom lv.Domain) error
	DomainResume(dom lv.Domain) error
	DomainStartDirtyRateCalc(dom lv.Domain, seconds int32, flags uint32) error
	DomainMemoryPeek(dom lv.Domain, offset uint64, size uint32, flags lv.DomainMemoryFlags) ([]byte, error)
	Agent
	Disconnected() <-chan struct{}
}

// dialFunc opens a connection; kill closes it at once, failing the calls
// in flight (go-libvirt's calls take no context).
type dialFunc func(uri string) (c rpc, kill func(), err error)

// trackingDialer remembers the socket it dialled so that it can be closed
// without an RPC (Disconnect would wait for a reply from a hung daemon).
type trackingDialer struct {
	inner interface{ Dial() (net.Conn, error) }
	mu    sync.Mutex
	conn  net.Conn
}

func (t *trackingDialer) Dial() (net.Conn, error) {
	c, err := t.inner.Dial()
	t.mu.Lock()
	t.conn = c
	t.mu.Unlock()
	return c, err
}

func (t *trackingDialer) kill() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		_ = t.conn.Close()
	}
}

// ControlURI splits a host URI into the URI the driver connects to and the
// peer URI other hosts' daemons use for peer-to-peer migration to it: the
// query parameter "peer" (removed from the control URI), else the URI
// itself.
func ControlURI(uri string) (control, peer string, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", "", fmt.Errorf("libvirt: bad URI %q: %w", uri, err)
	}
	q := u.Query()
	// an unescaped "+" in the peer URI reads as a space; URIs have none
	peer = strings.ReplaceAll(q.Get("peer"), " ", "+")
	q.Del("peer")
	u.RawQuery = q.Encode()
	control = u.String()
	if peer == "" {
		peer = control
	}
	return control, peer, nil
}

// dialLibvirt connects to a libvirt URI: qemu+unix (with ?socket=),
// qemu+tcp or qemu+tls (with ?pkipath=).
func dialLibvirt(uri string) (rpc, func(), error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, nil, fmt.Errorf("bad URI %q: %w", uri, err)
	}
	transport := "unix"
	if s := strings.SplitN(u.Scheme, "+", 2); len(s) == 2 {
		transport = s[1]
	} else if u.Host != "" {
		transport = "tls"
	}
	td := &trackingDialer{}
	switch transport {
	case "unix":
		var opts []dialers.LocalOption
		if s := u.Query().Get("socket"); s != "" {
			opts = append(opts, dialers.WithSocket(s))
		}
		opts = append(opts, dialers.WithLocalTimeout(5*time.Second))
		td.inner = dialers.NewLocal(opts...)
	case "tcp":
		opts := []dialers.RemoteOption{dialers.WithRemoteTimeout(5 * time.Second)}
		if p := u.Port(); p != "" {
			opts = append(opts, dialers.UsePort(p))
		}
		td.inner = dialers.NewRemote(u.Hostname(), opts...)
	case "tls":
		var opts []dialers.TLSOption
		if p := u.Port(); p != "" {
			opts = append(opts, dialers.UseTLSPort(p))
		}
		if p := u.Query().Get("pkipath"); p != "" {
			opts = append(opts, dialers.UsePKIPath(p))
		}
		td.inner = dialers.NewTLS(u.Hostname(), opts...)
	default:
		return nil, nil, fmt.Errorf("URI %q: transport %q not supported (unix, tcp, tls)", uri, transport)
	}
	l := lv.NewWithDialer(td)
	if err := l.ConnectToURI(lv.RemoteURI(u)); err != nil {
		td.kill()
		return nil, nil, err
	}
	return l, td.kill, nil
}

// conn is the driver's control connection to one host: it reconnects with
// exponential back-off and probes the daemon every KeepAlive (a cheap
// RPC with a timeout; go-libvirt does not speak libvirt's keep-alive
// protocol, so the daemon never pings us and we ping it).
type conn struct {
	d    *Driver
	host string
	uri  string
	log  *slog.Logger

	mu      sync.Mutex
	c       rpc
	kill    func()
	lastErr error
	tried   chan struct{} // closed after the first connection attempt
	gen     int           // connection generation, for logs
	// failures counts the attempts that failed since the last success.
	failures int
}

func (c *conn) loop(ctx context.Context) {
	cfg := &c.d.cfg
	backoff := cfg.ReconnectMin
	first := true
	for {
		cl, kill, err := c.dial(ctx)
		if ctx.Err() != nil {
			if kill != nil {
				kill()
			}
			if first {
				close(c.tried)
			}
			return
		}
		c.mu.Lock()
		if err != nil {
			c.lastErr = err
			c.failures++
		} else {
			c.c, c.kill, c.lastErr = cl, kill, nil
			c.gen++
			c.failures = 0
		}
		c.mu.Unlock()
		if first {
			close(c.tried)
			first = false
		}
		if err != nil {
			c.log.Debug("connect failed", "uri", c.uri, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, cfg.ReconnectMax)
			continue
		}
		backoff = cfg.ReconnectMin
		c.log.Debug("connected", "uri", c.uri)
		why := c.keepAlive(ctx, cl, kill)
		c.mu.Lock()
		c.c, c.kill = nil, nil
		c.lastErr = why
		c.mu.Unlock()
		kill()
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("connection lost; reconnecting", "host", c.host, "err", why)
	}
}

// dial connects without making ctx wait for a dial that hangs (go-libvirt's
// dialers take no context; TLS waits up to 20 s for a host that does not
// answer): when ctx ends first, the dial goes on in the background and its
// connection, if any, is closed.
func (c *conn) dial(ctx context.Context) (rpc, func(), error) {
	type result struct {
		c    rpc
		kill func()
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		cl, kill, err := c.d.dial(c.uri)
		ch <- result{cl, kill, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.kill, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.kill != nil {
				r.kill()
			}
		}()
		return nil, nil, ctx.Err()
	}
}

// keepAlive returns when the connection is lost, a probe fails or ctx ends.
func (c *conn) keepAlive(ctx context.Context, cl rpc, kill func()) error {
	t := time.NewTicker(c.d.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cl.Disconnected():
			return errors.New("connection closed")
		case <-t.C:
			if err := timed(c.d.cfg.RPCTimeout, kill, func() error {
				_, err := cl.ConnectGetLibVersion()
				return err
			}); err != nil {
				return fmt.Errorf("keep-alive probe: %w", err)
			}
		}
	}
}

// get returns the live client, waiting for the first attempt to finish.
func (c *conn) get() (rpc, func(), error) {
	select {
	case <-c.tried:
	case <-time.After(c.d.cfg.RPCTimeout):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		err := c.lastErr
		if err == nil {
			err = errors.New("not connected yet")
		}
		return nil, nil, fmt.Errorf("host %s (%s): %v: %w", c.host, c.uri, err, hypervisor.ErrHostUnreachable)
	}
	return c.c, c.kill, nil
}

// errTimeout marks an RPC that did not answer in time.
var errTimeout = errors.New("libvirt call timed out")

// timed runs f; if it does not return within d, kill closes the connection
// (which fails f) and timed reports errTimeout.
func timed(d time.Duration, kill func(), f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		if kill != nil {
			kill()
		}
		<-done
		return fmt.Errorf("%w after %v", errTimeout, d)
	}
}

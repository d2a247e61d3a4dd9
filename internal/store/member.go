// Package store keeps refuge's controller state in etcd: API tokens
// (hashed), evacuation operations and the journal of their per-VM steps,
// VM placements, the audit log and the controllers' leader election.
//
// A controller runs an embedded etcd member (Member) by default, so that
// one command starts a working controller; three controllers at three
// sites form one etcd cluster of embedded members so that the control
// plane survives the loss of any one site. Store talks to any etcd
// cluster through a client.
package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// MemberConfig sets up an embedded etcd member.
type MemberConfig struct {
	// Name of the member (default "refuge").
	Name string
	// DataDir holds the member's data (required). A controller's data
	// directory D keeps it in D/etcd.
	DataDir string
	// ClientURL and PeerURL are where the member listens for clients and
	// for the other members ("": a free port on 127.0.0.1).
	ClientURL, PeerURL string
	// InitialCluster lists every member as name=peerURL,… for a cluster
	// of several members ("": this member alone).
	InitialCluster string
	// Existing joins an existing cluster instead of forming a new one
	// (a member added with etcd's member add).
	Existing bool
	// PeerTLS, if its CertFile is set, secures traffic between members
	// with mutual TLS (TrustedCAFile must be set too).
	PeerTLS transport.TLSInfo
	// Fast trades durability for speed (no fsync, short election
	// timeouts): tests only.
	Fast bool
	// StartTimeout bounds how long Start waits for the member to be ready
	// (default 30 s; a member of a new cluster waits for a quorum).
	StartTimeout time.Duration
}

// Member is a running embedded etcd member.
type Member struct {
	etcd  *embed.Etcd
	cfg   MemberConfig
	close sync.Once
}

// FreeURL returns http://127.0.0.1:PORT with a port that was free a moment
// ago. The port is drawn below Linux's ephemeral range (32768–60999 by
// default), so that no socket bound to port 0 and no outgoing connection
// can take it between this call and the member's bind — which happened
// when several test binaries ran at once.
func FreeURL() (string, error) {
	for range 64 {
		port := freePortLow + rand.IntN(freePortHigh-freePortLow)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return fmt.Sprintf("http://127.0.0.1:%d", port), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("store: find a free port: %w", err)
	}
	defer l.Close()
	return "http://" + l.Addr().String(), nil
}

// The ports FreeURL draws from.
const freePortLow, freePortHigh = 20000, 32768

// ErrDataDirInUse is returned when another process runs a member on the
// same data directory.
var ErrDataDirInUse = errors.New("the data directory is in use by another refuge (is refuge serve running? then use the API)")

// StartMember starts an embedded member and waits until it is ready.
func StartMember(cfg MemberConfig) (*Member, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("store: MemberConfig.DataDir is required")
	}
	if cfg.Name == "" {
		cfg.Name = "refuge"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	var err error
	for _, u := range []*string{&cfg.ClientURL, &cfg.PeerURL} {
		if *u == "" {
			if *u, err = FreeURL(); err != nil {
				return nil, err
			}
		}
	}
	if cfg.PeerTLS.CertFile != "" {
		cfg.PeerURL = strings.Replace(cfg.PeerURL, "http://", "https://", 1)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = filepath.Clean(cfg.DataDir)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.LogLevel = "error"
	cu, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("store: client URL %q: %w", cfg.ClientURL, err)
	}
	pu, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("store: peer URL %q: %w", cfg.PeerURL, err)
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = cfg.InitialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = cfg.Name + "=" + pu.String()
	}
	ec.InitialClusterToken = "refuge"
	if cfg.Existing {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	ec.PeerTLSInfo = cfg.PeerTLS
	ec.AutoCompactionMode, ec.AutoCompactionRetention = embed.CompactorModeRevision, "10000"
	// Keep fewer raft entries in memory than etcd's defaults (10000 and
	// 5000): a large evacuation's journal would otherwise hold tens of MB.
	ec.SnapshotCount, ec.SnapshotCatchUpEntries = 2000, 1000
	if cfg.Fast {
		ec.UnsafeNoFsync = true
		ec.TickMs, ec.ElectionMs = 50, 500
	}
	if err := os.MkdirAll(ec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	e, err := startEtcd(ec, cfg.StartTimeout)
	if err != nil {
		return nil, err
	}
	return &Member{etcd: e, cfg: cfg}, nil
}

func startEtcd(ec *embed.Config, timeout time.Duration) (*embed.Etcd, error) {
	type started struct {
		e   *embed.Etcd
		err error
	}
	ch := make(chan started, 1)
	go func() {
		e, err := embed.StartEtcd(ec)
		ch <- started{e, err}
	}()
	var s started
	select {
	case s = <-ch:
	case <-time.After(timeout):
		// bbolt waits forever for the lock of a data directory in use.
		go func() {
			if s := <-ch; s.e != nil {
				s.e.Close()
			}
		}()
		return nil, fmt.Errorf("store: start etcd member %s in %s: %w", ec.Name, ec.Dir, ErrDataDirInUse)
	}
	if s.err != nil {
		return nil, fmt.Errorf("store: start etcd member %s in %s: %w", ec.Name, ec.Dir, s.err)
	}
	select {
	case <-s.e.Server.ReadyNotify():
		return s.e, nil
	case err := <-s.e.Err():
		s.e.Close()
		return nil, fmt.Errorf("store: etcd member %s: %w", ec.Name, err)
	case <-time.After(timeout):
		s.e.Close()
		return nil, fmt.Errorf("store: etcd member %s not ready after %v (does the cluster have a quorum of members up?)", ec.Name, timeout)
	}
}

// ClientURL is where clients reach the member.
func (m *Member) ClientURL() string { return m.cfg.ClientURL }

// PeerURL is where the other members reach it.
func (m *Member) PeerURL() string { return m.cfg.PeerURL }

// Name is the member's name.
func (m *Member) Name() string { return m.cfg.Name }

// Config returns the member's configuration, with the URLs it chose.
func (m *Member) Config() MemberConfig { return m.cfg }

// Close stops the member.
func (m *Member) Close() {
	m.close.Do(m.etcd.Close)
}

// WaitReady waits until the member serves linearizable reads (it is part
// of a cluster with a leader), or ctx ends.
func (m *Member) WaitReady(ctx context.Context) error {
	select {
	case <-m.etcd.Server.ReadyNotify():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func nopLogger() *zap.Logger { return zap.NewNop() }

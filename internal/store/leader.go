package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leadership is this controller's term as leader: an etcd lease kept alive
// by a session, and the election key created under it. Its Cmps fence
// writes: they hold only while that key exists with the revision it was
// created at, so a deposed leader (lease expired, another elected) can no
// longer write.
type Leadership struct {
	session  *concurrency.Session
	election *concurrency.Election
	key      string
	rev      int64
}

// Campaign blocks until this controller (id) leads or ctx ends. ttl is
// the lease's time to live in seconds: how long a dead leader keeps the
// leadership.
func (s *Store) Campaign(ctx context.Context, id string, ttl int) (*Leadership, error) {
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("store: leader session: %w", err)
	}
	el := concurrency.NewElection(sess, electionKey)
	if err := el.Campaign(ctx, id); err != nil {
		sess.Orphan()
		return nil, fmt.Errorf("store: campaign: %w", err)
	}
	return &Leadership{session: sess, election: el, key: el.Key(), rev: el.Rev()}, nil
}

// Cmps implements Fence.
func (l *Leadership) Cmps() []clientv3.Cmp {
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)}
}

// Revision is the revision at which leadership was won (a fencing token
// that grows with every term).
func (l *Leadership) Revision() int64 { return l.rev }

// Done is closed when the lease is lost.
func (l *Leadership) Done() <-chan struct{} { return l.session.Done() }

// Resign gives the leadership up and revokes the lease.
func (l *Leadership) Resign(ctx context.Context) error {
	err := l.election.Resign(ctx)
	return errors.Join(err, l.session.Close())
}

// Abandon stops keeping the lease alive without revoking it (as a crash
// would): the leadership expires after its TTL.
func (l *Leadership) Abandon() { l.session.Orphan() }

// Leader returns the current leader's id ("" when none).
func (s *Store) Leader(ctx context.Context) (string, error) {
	resp, err := s.c.Get(ctx, electionKey+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("store: leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Check returns ErrNotLeader unless f's comparisons hold now (a
// linearizable read through the cluster's leader).
func (s *Store) Check(ctx context.Context, f Fence) error {
	resp, err := s.c.Txn(ctx).If(f.Cmps()...).Commit()
	if err != nil {
		return fmt.Errorf("store: check leadership: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("store: check leadership: %w", ErrNotLeader)
	}
	return nil
}

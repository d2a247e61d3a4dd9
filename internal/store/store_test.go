package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/controller/controllertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, controllertest.LeakOptions()...)
}

// testStore starts a single fast member in a temporary directory.
func testStore(t *testing.T) (*Member, *Store) {
	t.Helper()
	m, err := StartMember(MemberConfig{DataDir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	s, err := Open([]string{m.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func TestTokens(t *testing.T) {
	_, s := testStore(t)
	ctx := context.Background()
	secret, tok, err := s.CreateToken(ctx, RoleOperator, "ops")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(ctx, secret)
	if err != nil || got.Role != RoleOperator || got.ID != tok.ID {
		t.Fatalf("Authenticate = %+v, %v; want role operator, id %s", got, err, tok.ID)
	}
	for _, bad := range []string{"", "rfg_nope", secret + "x", "Bearer " + secret} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Authenticate(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	// Only the hash is stored.
	resp, err := s.Client().Get(ctx, Prefix, withPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) != tokensKey+HashToken(secret) {
			continue
		}
		if contains(kv.Value, secret) {
			t.Fatal("the secret is stored in clear")
		}
	}
	if _, _, err := s.CreateToken(ctx, "root", ""); err == nil {
		t.Error("CreateToken accepted role root")
	}
}

func TestFencing(t *testing.T) {
	ctx, s, first := elected(t)
	op := &Operation{ID: NewID("op"), Kind: KindEvacuation, Status: OpRunning}
	if err := s.PutOperation(ctx, first, op); err != nil {
		t.Fatal(err)
	}
	// first resigns; a second controller is elected; first's writes fail.
	second := handOver(ctx, t, s, first)
	if err := s.PutSteps(ctx, first, op.ID, VMStep{VM: "x", State: VMStarting}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader's write: %v, want ErrNotLeader", err)
	}
	if err := s.PutSteps(ctx, second, op.ID, VMStep{VM: "x", State: VMMigrated, To: "h2"}); err != nil {
		t.Fatal(err)
	}
	if second.Revision() <= first.Revision() {
		t.Errorf("revisions %d then %d: want growing fencing tokens", first.Revision(), second.Revision())
	}
	if id, err := s.Leader(ctx); err != nil || id != "b" {
		t.Errorf("Leader = %q, %v; want b", id, err)
	}
	steps, err := s.Steps(ctx, op.ID)
	if err != nil || len(steps) != 1 || steps[0].State != VMMigrated {
		t.Fatalf("Steps = %+v, %v", steps, err)
	}
	pl, err := s.Placements(ctx)
	if err != nil || pl["x"] != "h2" {
		t.Fatalf("Placements = %v, %v", pl, err)
	}
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	release, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDataDir(dir); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second lock: %v, want ErrDataDirInUse", err)
	}
	release()
	r2, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r2()
}

func TestAudit(t *testing.T) {
	_, s := testStore(t)
	ctx := context.Background()
	for i, p := range []string{"/v1/a", "/v1/b", "/v1/c"} {
		if err := s.Audit(ctx, AuditEntry{At: time.Unix(int64(i), 0), Token: "t", Method: "POST", Path: p, Status: 202}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.AuditLog(ctx, 2)
	if err != nil || len(es) != 2 || es[0].Path != "/v1/b" || es[1].Path != "/v1/c" {
		t.Fatalf("AuditLog = %+v, %v; want b, c", es, err)
	}
}

// elected starts a store and elects controller "a" in it; ctx bounds
// the test's calls.
func elected(t *testing.T) (context.Context, *Store, *Leadership) {
	t.Helper()
	_, s := testStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	first, err := s.Campaign(ctx, "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, s, first
}

// handOver resigns first and returns the term of controller "b", elected
// next (resigned at the test's end).
func handOver(ctx context.Context, t *testing.T, s *Store, first *Leadership) *Leadership {
	t.Helper()
	if err := first.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := s.Campaign(ctx, "b", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Resign(context.Background()) })
	return second
}

func withPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// Prefix is where refuge keeps its keys.
const Prefix = "/refuge/"

// Key prefixes under Prefix.
const (
	tokensKey    = Prefix + "tokens/"
	opsKey       = Prefix + "ops/"
	stepsKey     = Prefix + "steps/"
	placementKey = Prefix + "placement/"
	auditKey     = Prefix + "audit/"
	alertsKey    = Prefix + "alerts/"
	pipelineKey  = Prefix + "pipeline/"
	applyKey     = Prefix + "apply/"
	electionKey  = Prefix + "leader"
	federationKy = Prefix + "federation"
)

// maxTxnOps stays under etcd's default limit of 128 operations per
// transaction.
const maxTxnOps = 100

// Errors.
var (
	// ErrNotFound: no such token, operation or key.
	ErrNotFound = errors.New("not found")
	// ErrNotLeader: a fenced write was refused because this controller no
	// longer holds the leadership it was given.
	ErrNotLeader = errors.New("not the leader (leadership lost or passed to another controller)")
)

// Store is refuge's state in an etcd cluster.
type Store struct {
	c *clientv3.Client
}

// Open connects to etcd at the given client URLs.
func Open(endpoints []string) (*Store, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      nopLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("store: connect to etcd %v: %w", endpoints, err)
	}
	return &Store{c: c}, nil
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Close closes the client.
func (s *Store) Close() error { return s.c.Close() }

// Fence guards writes: they happen only while its comparisons hold (the
// writer still leads). A nil Fence writes unconditionally.
type Fence interface {
	Cmps() []clientv3.Cmp
}

// write puts kvs (and deletes keys whose value is nil) in transactions of
// at most maxTxnOps operations, each guarded by f; several transactions go
// concurrently (the keys of one call are distinct, their order is free).
func (s *Store) write(ctx context.Context, f Fence, kvs []kv) error {
	var cmps []clientv3.Cmp
	if f != nil {
		cmps = f.Cmps()
	}
	var g errgroup.Group
	g.SetLimit(8)
	for len(kvs) > 0 {
		n := min(len(kvs), maxTxnOps)
		chunk := kvs[:n]
		kvs = kvs[n:]
		g.Go(func() error {
			ops := make([]clientv3.Op, len(chunk))
			for i, p := range chunk {
				switch {
				case p.val == nil && p.prefix:
					ops[i] = clientv3.OpDelete(p.key, clientv3.WithPrefix())
				case p.val == nil:
					ops[i] = clientv3.OpDelete(p.key)
				default:
					ops[i] = clientv3.OpPut(p.key, string(p.val))
				}
			}
			resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
			if err != nil {
				return fmt.Errorf("store: write %s: %w", chunk[0].key, err)
			}
			if !resp.Succeeded {
				return fmt.Errorf("store: write %s: %w", chunk[0].key, ErrNotLeader)
			}
			return nil
		})
	}
	return g.Wait()
}

type kv struct {
	key string
	val []byte
	// prefix: a nil val deletes every key under key.
	prefix bool
}

func jsonKV(key string, v any) (kv, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return kv{}, fmt.Errorf("store: encode %s: %w", key, err)
	}
	return kv{key: key, val: b}, nil
}

func (s *Store) getJSON(ctx context.Context, key string, v any) error {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("store: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("store: %s: %w", key, ErrNotFound)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return fmt.Errorf("store: decode %s: %w", key, err)
	}
	return nil
}

// list decodes every value under prefix, in key order, with newT making a
// value to decode into.
func list[T any](ctx context.Context, s *Store, prefix string, opts ...clientv3.OpOption) ([]T, error) {
	resp, err := s.c.Get(ctx, prefix, append([]clientv3.OpOption{clientv3.WithPrefix()}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, p := range resp.Kvs {
		var v T
		if err := json.Unmarshal(p.Value, &v); err != nil {
			return nil, fmt.Errorf("store: decode %s: %w", p.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// tokenPrefix starts every secret, so that a leaked one is recognisable.
const tokenPrefix = "rfg_"

// HashToken is the key a secret is stored under: its SHA-256. Secrets
// are 256 random bits, so a fast hash is enough (nothing to brute-force).
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateToken makes a new token with role and returns its secret, which is
// shown once and stored only hashed.
func (s *Store) CreateToken(ctx context.Context, role Role, name string) (string, Token, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", Token{}, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Token{}, fmt.Errorf("store: token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := HashToken(secret)
	t := Token{ID: h[:12], Name: name, Role: role, Created: time.Now().UTC()}
	p, err := jsonKV(tokensKey+h, t)
	if err != nil {
		return "", Token{}, err
	}
	if err := s.write(ctx, nil, []kv{p}); err != nil {
		return "", Token{}, err
	}
	return secret, t, nil
}

// Authenticate returns the token whose secret this is (ErrNotFound for
// none).
func (s *Store) Authenticate(ctx context.Context, secret string) (Token, error) {
	var t Token
	if !strings.HasPrefix(secret, tokenPrefix) {
		return t, fmt.Errorf("store: token: %w", ErrNotFound)
	}
	err := s.getJSON(ctx, tokensKey+HashToken(secret), &t)
	return t, err
}

// Tokens lists the tokens (without secrets).
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	return list[Token](ctx, s, tokensKey)
}

// SaveFederation stores the federation document the controller serves.
func (s *Store) SaveFederation(ctx context.Context, f Fence, doc []byte) error {
	return s.write(ctx, f, []kv{{key: federationKy, val: doc}})
}

// Federation returns the stored federation document (ErrNotFound if none).
func (s *Store) Federation(ctx context.Context) ([]byte, error) {
	resp, err := s.c.Get(ctx, federationKy)
	if err != nil {
		return nil, fmt.Errorf("store: get federation: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("store: federation: %w", ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// NewID returns a time-ordered unique id with a prefix.
func NewID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", prefix, time.Now().UTC().Format("20060102T150405.000"), hex.EncodeToString(b[:]))
}

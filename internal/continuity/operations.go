package continuity

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/api"
	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/model"
)

// ServicesAt lists, sorted, the services with a VM placed at one of sites
// (placement: a host index per VM, -1 for nowhere).
func ServicesAt(ix *model.Index, placement []int, sites []string) []string {
	at := map[int]bool{}
	for _, s := range sites {
		if i, ok := ix.SiteByName[s]; ok {
			at[i] = true
		}
	}
	var out []string
	for v, h := range placement {
		svc := ix.Fed.VMs[v].Service
		if h >= 0 && svc != "" && at[ix.HostSite(h)] && !slices.Contains(out, svc) {
			out = append(out, svc)
		}
	}
	slices.Sort(out)
	return out
}

// Prepare lowers, for operation op, the TTL of the services' names to ttl
// (0: DefaultLoweredTTL) — each change verified by a query and audited by
// the DNS updater — so that resolvers drop the old answer soon after the
// switch-over. A name another prepared operation holds lowered already is
// only counted. Restore(op) undoes it.
func (c *Coordinator) Prepare(ctx context.Context, op string, services []string, ttl uint32) error {
	if ttl == 0 {
		ttl = DefaultLoweredTTL
	}
	c.mu.Lock()
	if c.holders == nil {
		c.holders = map[string]map[string]bool{}
	}
	var first []string
	for _, s := range services {
		if c.holders[s] == nil {
			c.holders[s] = map[string]bool{}
		}
		if len(c.holders[s]) == 0 {
			first = append(first, s)
		}
		c.holders[s][op] = true
	}
	c.mu.Unlock()
	if err := c.LowerTTL(ctx, first, ttl); err != nil {
		return fmt.Errorf("continuity: operation %s: %w", op, err)
	}
	return nil
}

// Restore puts back the TTL of the names Prepare lowered for operation op
// that no other prepared operation still holds.
func (c *Coordinator) Restore(ctx context.Context, op string) error {
	c.mu.Lock()
	var last []string
	for s, ops := range c.holders {
		if ops[op] {
			delete(ops, op)
			if len(ops) == 0 {
				last = append(last, s)
			}
		}
	}
	c.mu.Unlock()
	slices.Sort(last)
	if err := c.RestoreTTL(ctx, last); err != nil {
		return fmt.Errorf("continuity: operation %s: %w", op, err)
	}
	return nil
}

// FollowOptions configure Follow.
type FollowOptions struct {
	// Services lists the services with a VM at the sites now
	// (ServicesAt over the controller's placement).
	Services func(sites []string) []string
	// TTL is the lowered TTL (0: DefaultLoweredTTL).
	TTL    uint32
	Logger *slog.Logger
	// RestoreTimeout bounds restoring the TTLs when ctx ends (default 30 s).
	RestoreTimeout time.Duration
}

// Follow keeps, for every live evacuation in changes (the controller's
// store Watch), the TTL of its sites' services lowered: Prepare when the
// operation is first seen live, Restore when it is seen ended. When ctx
// ends (or changes closes) it restores what is still lowered and returns.
// Failures are logged, never fatal: continuity must not stop an
// evacuation.
func (c *Coordinator) Follow(ctx context.Context, changes <-chan api.Change, o FollowOptions) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RestoreTimeout <= 0 {
		o.RestoreTimeout = 30 * time.Second
	}
	live := map[string]bool{}
	restore := func(ctx context.Context, id string) {
		delete(live, id)
		if err := c.Restore(ctx, id); err != nil {
			o.Logger.Warn("continuity: restoring TTLs failed", "op", id, "err", err)
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.RestoreTimeout)
		defer cancel()
		for _, id := range slices.Sorted(maps.Keys(live)) {
			restore(rctx, id)
		}
	}()
	for {
		var ch api.Change
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ch, ok = <-changes:
			if !ok {
				return
			}
		}
		op := ch.Operation
		if op == nil || op.Kind != api.KindEvacuation {
			continue
		}
		switch isLive := api.Live(op.Status); {
		case isLive && !live[op.ID]:
			live[op.ID] = true
			sites := make([]string, len(op.Sites))
			for i, s := range op.Sites {
				sites[i] = s.Site
			}
			svcs := o.Services(sites)
			o.Logger.Info("continuity: lowering TTLs for an evacuation", "op", op.ID, "services", svcs, "ttl", o.TTL)
			if err := c.Prepare(ctx, op.ID, svcs, o.TTL); err != nil {
				o.Logger.Warn("continuity: lowering TTLs failed; the evacuation goes on", "op", op.ID, "err", err)
			}
		case !isLive && live[op.ID]:
			o.Logger.Info("continuity: restoring TTLs after an evacuation", "op", op.ID, "status", op.Status)
			restore(ctx, op.ID)
		}
	}
}

// Background runs Follow on watch(ctx) in a goroutine; the returned stop
// ends it and waits until it has restored what it lowered. It is what
// `refuge serve --continuity` calls, with the store's Watch.
func (c *Coordinator) Background(ctx context.Context, watch func(context.Context) <-chan api.Change, o FollowOptions) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.Follow(ctx, watch(ctx), o) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// Auditor returns a dns.Config.Audit that logs every DNS change and
// writes it to the controller's audit log through sink (nil: log only).
// A failed write is logged; the change itself has happened.
func Auditor(lg *slog.Logger, sink func(context.Context, api.AuditEntry) error) func(dns.Change) {
	return func(ch dns.Change) {
		e := AuditEntry(ch)
		lg.Info("continuity: DNS change", "name", e.Path, "detail", e.Detail)
		if sink == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sink(ctx, e); err != nil {
			lg.Warn("continuity: DNS change not written to the audit log", "name", e.Path, "err", err)
		}
	}
}

// AuditEntry is a DNS change as an entry of the controller's audit log.
func AuditEntry(ch dns.Change) api.AuditEntry {
	detail := fmt.Sprintf("%s %s in zone %s on %s: %v TTL %d → %v TTL %d: %s (attempt %d)",
		ch.Op, ch.To.Name, ch.Zone, ch.Server, ch.From.Addrs, ch.From.TTL, ch.To.Addrs, ch.To.TTL, ch.Result, ch.Attempt)
	status := 200
	if ch.Result != "applied" && ch.Result != "already-applied" {
		status = 502
	}
	return api.AuditEntry{At: ch.At, Name: "continuity", Method: "DNS UPDATE", Path: ch.To.Name, Status: status, Detail: detail}
}

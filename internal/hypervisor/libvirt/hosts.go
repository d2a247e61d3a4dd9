package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"
)

// HostState is one host's control connection as WaitHosts found it.
type HostState struct {
	Host string `json:"host"`
	Up   bool   `json:"up"`
	// Reason says briefly why a host is down (one line, no URI).
	Reason string `json:"reason,omitempty"`
	// Err is the last connection error in full (nil when up).
	Err error `json:"-"`
}

// DownAfterFailures is how many failed connection attempts in a row make
// WaitHosts report a host down before its timeout: the first attempt and
// the retry ReconnectMin later, so that one lost packet or a daemon
// restarting does not drop a host from an evacuation.
const DownAfterFailures = 2

// WaitHosts waits until every host's control connection is up or the host
// is down — DownAfterFailures failed attempts in a row, or no connection
// within timeout (a dial that hangs, e.g. a TLS host that does not answer) —
// and returns each host's state, sorted by name. The connections are
// already being made concurrently (New starts them), so the wait is bounded
// by timeout however many hosts are down. Hosts reported down are still
// retried in the background; callers decide whether to use them later.
func (d *Driver) WaitHosts(ctx context.Context, timeout time.Duration) []HostState {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		states, settled := d.hostStates(false)
		if settled {
			return states
		}
		select {
		case <-ctx.Done():
			states, _ = d.hostStates(true)
			return states
		case <-deadline.C:
			states, _ = d.hostStates(true)
			for i := range states {
				if !states[i].Up && states[i].Err == nil {
					states[i].Err = fmt.Errorf("no connection within %v", timeout)
					states[i].Reason = states[i].Err.Error()
				}
			}
			return states
		case <-tick.C:
		}
	}
}

// hostStates reads every connection's state; settled reports that each is
// up or has failed DownAfterFailures times. With final, every host that is
// not up counts as down.
func (d *Driver) hostStates(final bool) (states []HostState, settled bool) {
	settled = true
	for name, c := range d.hosts {
		c.mu.Lock()
		up, failures, err := c.c != nil, c.failures, c.lastErr
		c.mu.Unlock()
		st := HostState{Host: name, Up: up}
		if !up {
			if failures < DownAfterFailures && !final {
				settled = false
			}
			st.Err = err
			if err != nil {
				st.Reason = ShortReason(err)
			}
		}
		states = append(states, st)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Host < states[j].Host })
	return states, settled
}

// ShortReason condenses a connection error into one short line for an
// operator: the system call's or resolver's own words and the file or
// address concerned, without the wrapping of every layer.
func ShortReason(err error) string {
	if err == nil {
		return ""
	}
	var dnsErr *net.DNSError
	var pathErr *os.PathError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.As(err, &pathErr):
		why := pathErr.Err.Error()
		if strings.Contains(err.Error(), "tls") {
			return fmt.Sprintf("TLS: %s: %s", pathErr.Path, why)
		}
		return fmt.Sprintf("%s: %s", pathErr.Path, why)
	case errors.As(err, &opErr):
		if opErr.Timeout() {
			return fmt.Sprintf("%s %v: timed out", opErr.Op, opErr.Addr)
		}
		inner := opErr.Err
		var sys *os.SyscallError
		if errors.As(inner, &sys) {
			inner = sys.Err
		}
		return fmt.Sprintf("%s %v: %v", opErr.Op, opErr.Addr, inner)
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	const maxLen = 120
	if r := []rune(s); len(r) > maxLen {
		s = string(r[:maxLen-1]) + "…"
	}
	return s
}

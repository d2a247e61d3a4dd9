package dnstest

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServersAnswer starts each server and reads back a record of the zone.
func TestServersAnswer(t *testing.T) {
	for _, kind := range []Kind{Knot, BIND} {
		t.Run(string(kind), func(t *testing.T) {
			Require(t, kind)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := Start(ctx, kind, t.TempDir(), Options{Records: []string{"www 60 IN A 192.0.2.7"}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m := new(dns.Msg).SetQuestion("www."+s.Zone, dns.TypeA)
			r, err := dns.ExchangeContext(ctx, m, s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" || r.Answer[0].Header().Ttl != 60 {
				t.Fatalf("answer %v", r.Answer)
			}
		})
	}
}

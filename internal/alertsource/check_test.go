package alertsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFromSpecRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"usgs:ftp://x", `scheme "ftp" is not supported`},
		{"atom:ftp://x/feed", `scheme "ftp" is not supported`},
		{"jma-atom:/relative/feed.xml", `scheme "" is not supported`},
		{"usgs:https://", "has no host"},
		{"p2pquake:ftp://x", `scheme "ftp" is not supported`},
		{"webhook:8080", "listen address"},
		{"webhook:127.0.0.1:99999", "listen address"},
	} {
		_, err := FromSpec(tc.spec, SpecOptions{Secret: func(string) ([]byte, bool) { return nil, false }})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.spec) {
			t.Errorf("%s: %v, want an error naming the spec and %q", tc.spec, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		src  Checker
		want string // "" for no error
	}{
		{&File{Path: dir}, ""},
		{&File{Path: filepath.Join(dir, "nope")}, "no such file"},
		{&Webhook{Addr: "127.0.0.1:0"}, ""},
		{&Webhook{Addr: "256.0.0.1:80"}, "256.0.0.1"},
	} {
		err := tc.src.Check()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Check() = %v, want %q", tc.src.Name(), err, tc.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&HTTPStatusError{Status: 404}, true},
		{fmt.Errorf("feed: %w", &HTTPStatusError{Status: 403}), true},
		{&HTTPStatusError{Status: 429}, false},
		{&HTTPStatusError{Status: 408}, false},
		{&HTTPStatusError{Status: 503}, false},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, true},
		{errors.New("connection refused"), false},
	} {
		if got := Permanent(tc.err); got != tc.want {
			t.Errorf("Permanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// The count starts again after a success or a transient failure.
	var g giveUp
	for i, err := range []error{&HTTPStatusError{Status: 404}, nil, &HTTPStatusError{Status: 404}, errors.New("reset")} {
		if g.check(err) != nil || (i < 3 && g.n > 1) {
			t.Fatalf("gave up early at step %d (n %d)", i, g.n)
		}
	}
	var last error
	for range PermanentFailures {
		last = g.check(&HTTPStatusError{Status: 404})
	}
	if last == nil || !strings.Contains(last.Error(), "gave up") {
		t.Errorf("after %d 404s in a row: %v", PermanentFailures, last)
	}
}

// TestSourcesGiveUpOnPermanentErrors: a feed or stream that answers 404
// ends its source after PermanentFailures attempts, each reported.
func TestSourcesGiveUpOnPermanentErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	backoff := func() *Backoff { return NewBackoff(time.Millisecond, 2*time.Millisecond, 1) }
	for _, tc := range []struct {
		name string
		src  func(Common) Source
	}{
		{"usgs", func(c Common) Source {
			return &USGS{Common: c, URL: srv.URL + "/feed.geojson", Client: srv.Client(), Interval: time.Hour, Backoff: backoff()}
		}},
		{"atom", func(c Common) Source {
			return &Atom{Common: c, URL: srv.URL + "/feed", Client: srv.Client(), Interval: time.Hour, Backoff: backoff()}
		}},
		{"p2pquake", func(c Common) Source {
			return &P2PQuake{Common: c, URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Client: srv.Client(), Backoff: backoff()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tc.src(Common{OnError: c.onError}).Run(ctx, c.sink)
			if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "gave up after 5 failures") || !strings.Contains(err.Error(), "404") {
				t.Fatalf("Run: %v, want it to give up on the 404s", err)
			}
			if _, errs := c.snapshot(); len(errs) != PermanentFailures-1 {
				t.Errorf("%d failures reported before giving up, want %d: %v", len(errs), PermanentFailures-1, errs)
			}
		})
	}
	// A source made by hand with an unusable URL fails at once.
	if err := (&USGS{URL: "ftp://x"}).Run(context.Background(), newCollector().sink); err == nil {
		t.Error("USGS ran with an ftp URL")
	}
}

func TestFileRunReportsAFatalErrorOnce(t *testing.T) {
	c := newCollector()
	err := (&File{Common: Common{OnError: c.onError}, Path: filepath.Join(t.TempDir(), "nope")}).Run(context.Background(), c.sink)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run: %v", err)
	}
	if _, errs := c.snapshot(); len(errs) != 0 {
		t.Errorf("the error Run returns was also reported: %v", errs)
	}
}

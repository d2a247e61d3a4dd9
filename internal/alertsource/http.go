package alertsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
)

// DefaultInterval is how often the pollers ask for their feed. JMA updates
// its high-frequency feeds every minute and asks clients not to poll more
// often; USGS regenerates its summary feeds every minute.
const DefaultInterval = time.Minute

// UserAgent is sent with every request.
const UserAgent = "refuge-alertsource/1 (+https://github.com/refuge-project/refuge)"

// HTTPStatusError is a response with an unexpected status.
type HTTPStatusError struct {
	URL    string
	Status int
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// validators are a resource's conditional-GET validators.
type validators struct {
	etag, lastModified string
}

// fetch GETs url, conditionally when v holds validators from an earlier
// answer (If-None-Match, If-Modified-Since), and updates v from the
// answer. It returns notModified for a 304; bodies are bounded by
// alert.MaxDocumentSize.
func fetch(ctx context.Context, client *http.Client, url string, v *validators) (body []byte, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("User-Agent", UserAgent)
	if v != nil {
		if v.etag != "" {
			req.Header.Set("If-None-Match", v.etag)
		}
		if v.lastModified != "" {
			req.Header.Set("If-Modified-Since", v.lastModified)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && v != nil && (v.etag != "" || v.lastModified != ""):
		return nil, true, nil
	case resp.StatusCode != http.StatusOK:
		return nil, false, &HTTPStatusError{URL: url, Status: resp.StatusCode}
	}
	body, err = alert.ReadDocument(resp.Body)
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: %w", url, err)
	}
	if v != nil {
		v.etag, v.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	}
	return body, false, nil
}

// PermanentFailures is how many failures in a row that retrying cannot
// fix (see Permanent) a poller or stream takes before it gives up: a feed
// answering 404 or 403, or whose certificate does not verify, will not
// heal by itself, but a moment's misconfiguration at the far end should
// not end the source. Other failures (no route, time-outs, 5xx) are
// retried for as long as the source runs.
const PermanentFailures = 5

// Permanent reports whether retrying the request that failed with err
// cannot help: an HTTP status 4xx other than 408 (time-out), 425 (too
// early) and 429 (too many requests), or a certificate that does not
// verify.
func Permanent(err error) bool {
	var se *HTTPStatusError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
			return false
		}
		return se.Status >= 400 && se.Status < 500
	}
	var cert *tls.CertificateVerificationError
	return errors.As(err, &cert)
}

// giveUp counts failures in a row that retrying cannot fix.
type giveUp struct{ n int }

// check counts err and returns an error once PermanentFailures permanent
// failures have followed each other; other errors and successes (nil)
// start the count again.
func (g *giveUp) check(err error) error {
	if err == nil || !Permanent(err) {
		g.n = 0
		return nil
	}
	if g.n++; g.n < PermanentFailures {
		return nil
	}
	return fmt.Errorf("gave up after %d failures in a row that retrying cannot fix: %w", g.n, err)
}

// pollLoop calls poll every interval; after a failure it waits the
// back-off's delay instead, and the first success resets it. It gives up
// (returns the error) after PermanentFailures permanent failures in a row.
func pollLoop(ctx context.Context, c *Common, name string, interval time.Duration, b *Backoff, poll func(context.Context) error) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	clk := c.clock()
	var permanent giveUp
	for {
		err := poll(ctx)
		wait := interval
		if isCanceled(ctx, err) {
			return ctx.Err()
		}
		if fatal := permanent.check(err); fatal != nil {
			return fatal
		}
		if err == nil {
			b.Reset()
		} else {
			wait = b.Next()
			c.fail(name, fmt.Errorf("%w (failure %d; retrying in %s)", err, b.Failures(), wait.Round(time.Millisecond)))
		}
		if err := sleep(ctx, clk, wait); err != nil {
			return err
		}
	}
}

// httpClient returns c, or a client with a timeout.
func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: 30 * time.Second}
}

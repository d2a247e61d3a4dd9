package alertsource

import (
	"context"
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

// pollLoop calls poll every interval; after a failure it waits the
// back-off's delay instead, and the first success resets it.
func pollLoop(ctx context.Context, c *Common, name string, interval time.Duration, b *Backoff, poll func(context.Context) error) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	clk := c.clock()
	for {
		err := poll(ctx)
		wait := interval
		switch {
		case err == nil:
			b.Reset()
		case isCanceled(ctx, err):
			return ctx.Err()
		default:
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

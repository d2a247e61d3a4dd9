package alertsource

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
)

// USGS polls a USGS earthquake GeoJSON feed (a summary feed such as
// https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/4.5_hour.geojson,
// or an event's detail feed) conditionally every Interval and passes on the
// events that are new or updated since the last poll.
type USGS struct {
	Common
	URL    string
	Client *http.Client
	// Interval between polls (DefaultInterval if zero).
	Interval time.Duration
	// Backoff after failures (NewBackoff(0, 0, 2) if nil).
	Backoff *Backoff

	feed validators
	seen map[string]bool // event id + version, of events in the last feed
}

// Name implements Source.
func (s *USGS) Name() string { return "usgs " + s.URL }

// Run implements Source.
func (s *USGS) Run(ctx context.Context, sink Sink) error {
	if err := checkURL(s.URL, feedSchemes); err != nil {
		return err
	}
	if s.Backoff == nil {
		s.Backoff = NewBackoff(0, 0, 2)
	}
	return pollLoop(ctx, &s.Common, s.Name(), s.Interval, s.Backoff, func(ctx context.Context) error { return s.Poll(ctx, sink) })
}

// Poll fetches the feed once and delivers its new and updated events. A
// feed that does not parse is an error (the next poll fetches it again).
func (s *USGS) Poll(ctx context.Context, sink Sink) error {
	body, notModified, err := fetch(ctx, httpClient(s.Client), s.URL, &s.feed)
	if err != nil || notModified {
		return err
	}
	alerts, err := alert.ParseAllFormat("usgs", body)
	if err != nil {
		s.feed = validators{}
		return fmt.Errorf("feed %s: %w", s.URL, err)
	}
	seen := make(map[string]bool, len(alerts))
	var fresh []*alert.Alert
	// Summary feeds list the newest event first; deliver oldest first.
	for i := len(alerts) - 1; i >= 0; i-- {
		a := alerts[i]
		key := fmt.Sprintf("%s %d %d", a.EventID, a.Serial, a.IssuedAt.UnixMilli())
		seen[key] = true
		if !s.seen[key] {
			fresh = append(fresh, a)
		}
	}
	s.seen = seen
	return s.deliver(ctx, s.Name(), s.URL, fresh, sink)
}

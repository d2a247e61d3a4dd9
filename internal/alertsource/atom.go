package alertsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
)

// JMATitles are the titles (Control/Title) of the JMA telegrams the jma
// parser reads; an Atom poller given them fetches only those entries of
// JMA's feeds, which also list volcano and other telegrams.
var JMATitles = []string{
	"緊急地震速報配信テスト", "緊急地震速報（警報）", "緊急地震速報（予報）", "緊急地震速報（地震動予報）",
	"震度速報", "震源に関する情報", "震源・震度に関する情報", "長周期地震動に関する観測情報",
	"津波警報・注意報・予報a", "津波情報a",
}

// Atom polls an Atom feed whose entries link to alert documents (JMA's
// disaster-prevention XML feeds, e.g.
// https://www.data.jma.go.jp/developer/xml/feed/eqvol.xml): it GETs the
// feed conditionally every Interval, and for each entry it has not seen
// (by id and updated time) GETs the linked document, parses it and passes
// its alerts on.
type Atom struct {
	Common
	// URL is the feed's address.
	URL    string
	Client *http.Client
	// Interval between polls (DefaultInterval if zero).
	Interval time.Duration
	// Backoff after failures (NewBackoff(0, 0, 1) if nil).
	Backoff *Backoff
	// Titles, if not empty, limits the entries fetched to those with one
	// of these titles (JMATitles for JMA's feeds).
	Titles []string
	// MaxAge, if positive, skips entries updated longer ago than this
	// (on start a feed lists hours of old telegrams).
	MaxAge time.Duration

	feed validators
	seen map[string]bool // entry id + updated, of entries in the last feed
}

// Name implements Source.
func (s *Atom) Name() string { return "atom " + s.URL }

// Run implements Source.
func (s *Atom) Run(ctx context.Context, sink Sink) error {
	if err := checkURL(s.URL, feedSchemes); err != nil {
		return err
	}
	if s.Backoff == nil {
		s.Backoff = NewBackoff(0, 0, 1)
	}
	return pollLoop(ctx, &s.Common, s.Name(), s.Interval, s.Backoff, func(ctx context.Context) error { return s.Poll(ctx, sink) })
}

// atomFeed is the part of an Atom document the poller reads.
type atomFeed struct {
	Entries []atomEntry `xml:"http://www.w3.org/2005/Atom entry"`
}

type atomEntry struct {
	ID      string     `xml:"http://www.w3.org/2005/Atom id"`
	Title   string     `xml:"http://www.w3.org/2005/Atom title"`
	Updated string     `xml:"http://www.w3.org/2005/Atom updated"`
	Links   []atomLink `xml:"http://www.w3.org/2005/Atom link"`
}

type atomLink struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
}

// document returns the entry's link to its document: the first link
// that is not rel="self" or similar, preferring an XML type.
func (e *atomEntry) document() string {
	best := ""
	for _, l := range e.Links {
		if l.Href == "" || (l.Rel != "" && l.Rel != "alternate" && l.Rel != "related" && l.Rel != "enclosure") {
			continue
		}
		if strings.Contains(l.Type, "xml") {
			return l.Href
		}
		if best == "" {
			best = l.Href
		}
	}
	return best
}

// Poll fetches the feed once and delivers the alerts of its new entries.
// Documents that cannot be parsed are reported and skipped for good;
// documents that cannot be fetched are tried again at the next poll, and
// Poll returns their errors (so that Run backs off) after
// delivering the rest.
func (s *Atom) Poll(ctx context.Context, sink Sink) error {
	client := httpClient(s.Client)
	body, notModified, err := fetch(ctx, client, s.URL, &s.feed)
	if err != nil || notModified {
		return err
	}
	var f atomFeed
	if err := alert.DecodeXML("atom", body, &f); err != nil {
		return fmt.Errorf("feed %s: %w", s.URL, err)
	}
	base, err := url.Parse(s.URL)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(f.Entries))
	now := s.clock().Now()
	var fetchErr error
	// Feeds list the newest entry first; deliver in publication order.
	for i := len(f.Entries) - 1; i >= 0; i-- {
		e := &f.Entries[i]
		key := e.ID + " " + e.Updated
		seen[key] = true
		if s.seen[key] {
			continue
		}
		if len(s.Titles) > 0 && !slices.Contains(s.Titles, strings.TrimSpace(e.Title)) {
			continue
		}
		if s.MaxAge > 0 {
			if t, err := time.Parse(time.RFC3339, strings.TrimSpace(e.Updated)); err == nil && now.Sub(t) > s.MaxAge {
				continue
			}
		}
		href := e.document()
		if href == "" {
			s.fail(s.Name(), fmt.Errorf("entry %q has no link to a document", e.ID))
			continue
		}
		ref, err := base.Parse(href)
		if err != nil {
			s.fail(s.Name(), fmt.Errorf("entry %q: link %q: %w", e.ID, href, err))
			continue
		}
		doc, _, err := fetch(ctx, client, ref.String(), nil)
		if err != nil {
			if isCanceled(ctx, err) {
				return ctx.Err()
			}
			delete(seen, key) // try again next time
			fetchErr = errors.Join(fetchErr, err)
			continue
		}
		alerts, err := alert.ParseAll(doc)
		if err != nil {
			s.fail(s.Name(), fmt.Errorf("%s: %w", ref, err))
			continue
		}
		if err := s.deliver(ctx, s.Name(), ref.String(), alerts, sink); err != nil {
			return err
		}
	}
	s.seen = seen
	if fetchErr != nil {
		// Ask for the whole feed next time, or a 304 would hide the
		// entries whose documents could not be fetched.
		s.feed = validators{}
		return fmt.Errorf("fetching documents: %w", fetchErr)
	}
	return nil
}

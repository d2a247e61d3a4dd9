package alertsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/clock"
)

// fakeServer serves fixed bodies by path on loopback, with ETag and
// Last-Modified validators, and records the requests it got.
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   map[string][]byte
	versions map[string]int
	fail     map[string]int // path → how many more requests fail with 503
	requests []*http.Request
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{bodies: map[string][]byte{}, versions: map[string]int{}, fail: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) set(path string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies[path] = body
	f.versions[path]++
}

func (f *fakeServer) failNext(path string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[path] = n
}

func (f *fakeServer) reqs(path string) []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*http.Request
	for _, r := range f.requests {
		if r.URL.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	if f.fail[r.URL.Path] > 0 {
		f.fail[r.URL.Path]--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	body, ok := f.bodies[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"v%d"`, f.versions[r.URL.Path])
	lastMod := time.Date(2026, 1, 1, 0, f.versions[r.URL.Path], 0, 0, time.UTC).Format(http.TimeFormat)
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", lastMod)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(body)
}

type feedEntry struct{ title, href, updated string }

func atomFeedXML(entries ...feedEntry) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja"><title>高頻度（地震火山）</title><id>urn:test</id><updated>2026-01-01T00:00:00+09:00</updated>
<link href="/feed" rel="self"/>`)
	// Newest first, as JMA lists them.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		fmt.Fprintf(&b, `<entry><title>%s</title><id>%s</id><updated>%s</updated><author><name>気象庁</name></author>
<link type="application/xml" href="%s"/><content type="text">test</content></entry>
`, e.title, e.href, e.updated, e.href)
	}
	b.WriteString("</feed>")
	return []byte(b.String())
}

func TestAtomPoll(t *testing.T) {
	srv := newFakeServer(t)
	srv.set("/data/eew1.xml", fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	srv.set("/data/tsunami.xml", fixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml"))
	srv.set("/data/volcano.xml", []byte(`<Report/>`))
	srv.set("/data/broken.xml", []byte(`<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>震度速報`))
	srv.set("/data/eew2.xml", fixture(t, "jma/jmasample_37_01_03_240613_VXSE43.xml"))
	entries := []feedEntry{
		{"津波警報・注意報・予報a", "/data/tsunami.xml", "2011-03-11T05:49:00Z"},
		{"噴火警報・予報", "/data/volcano.xml", "2024-04-17T14:00:00Z"},
		{"緊急地震速報（警報）", "/data/eew1.xml", "2024-04-17T14:14:59Z"},
		{"震度速報", "/data/broken.xml", "2024-04-17T14:16:00Z"},
	}
	srv.set("/feed", atomFeedXML(entries...))

	c := newCollector()
	src := &Atom{Common: Common{OnError: c.onError}, URL: srv.URL + "/feed", Client: srv.Client(), Titles: JMATitles}
	ctx := context.Background()
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	alerts, errs := c.snapshot()
	if len(alerts) != 2 || alerts[0].Product != "VTSE41" || alerts[1].Product != "VXSE43" {
		t.Fatalf("alerts %v, want the tsunami warning then the EEW (publication order)", products(alerts))
	}
	if alerts[0].ReceivedAt.IsZero() {
		t.Error("ReceivedAt not set")
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "broken.xml") {
		t.Errorf("errors %v, want one naming broken.xml", errs)
	}
	if n := len(srv.reqs("/data/volcano.xml")); n != 0 {
		t.Errorf("an entry with another title was fetched %d times", n)
	}

	// Unchanged feed: a conditional GET answered 304, nothing new.
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	feedReqs := srv.reqs("/feed")
	if got := feedReqs[len(feedReqs)-1].Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("If-None-Match %q", got)
	}
	if got := feedReqs[len(feedReqs)-1].Header.Get("If-Modified-Since"); got == "" {
		t.Error("no If-Modified-Since")
	}
	if a, _ := c.snapshot(); len(a) != 2 {
		t.Errorf("%d alerts after an unchanged feed", len(a))
	}

	// A new entry (the cancellation): only it is fetched. Its document
	// first fails with 503: Poll reports it, and the next poll asks for
	// the whole feed again and gets it.
	srv.set("/feed", atomFeedXML(append(entries, feedEntry{"緊急地震速報（警報）", "/data/eew2.xml", "2024-04-17T14:17:00Z"})...))
	srv.failNext("/data/eew2.xml", 1)
	var se *HTTPStatusError
	if err := src.Poll(ctx, c.sink); !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("poll error %v, want the document's 503", err)
	}
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	feedReqs = srv.reqs("/feed")
	if got := feedReqs[len(feedReqs)-1].Header.Get("If-None-Match"); got != "" {
		t.Errorf("after a failed document the feed was asked for conditionally (%q)", got)
	}
	alerts, _ = c.snapshot()
	if len(alerts) != 3 || alerts[2].MsgType != alert.MsgCancel {
		t.Fatalf("alerts %v, want the cancellation third", products(alerts))
	}
	if n := len(srv.reqs("/data/eew1.xml")); n != 1 {
		t.Errorf("an old entry's document was fetched %d times", n)
	}
}

func TestAtomMaxAgeAndRelativeLinks(t *testing.T) {
	srv := newFakeServer(t)
	srv.set("/feeds/data/new.xml", fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	srv.set("/feeds/data/old.xml", fixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml"))
	srv.set("/feeds/feed.xml", atomFeedXML(
		feedEntry{"津波警報・注意報・予報a", "data/old.xml", "2011-03-11T05:49:00Z"},
		feedEntry{"緊急地震速報（警報）", "data/new.xml", "2024-04-17T14:14:59Z"},
	))
	c := newCollector()
	clk := fixedClock{time.Date(2024, 4, 17, 14, 20, 0, 0, time.UTC)}
	src := &Atom{Common: Common{Clock: clk}, URL: srv.URL + "/feeds/feed.xml", Client: srv.Client(), MaxAge: time.Hour}
	if err := src.Poll(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); len(a) != 1 || a[0].Product != "VXSE43" || !a[0].ReceivedAt.Equal(clk.t) {
		t.Fatalf("alerts %v, want only the recent EEW stamped with the clock", products(a))
	}
}

func TestAtomRunBacksOff(t *testing.T) {
	srv := newFakeServer(t)
	srv.set("/data/eew.xml", fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	srv.set("/feed", atomFeedXML(feedEntry{"緊急地震速報（警報）", "/data/eew.xml", "2024-04-17T14:14:59Z"}))
	srv.failNext("/feed", 3)
	c := newCollector()
	src := &Atom{Common: Common{OnError: c.onError}, URL: srv.URL + "/feed", Client: srv.Client(),
		Interval: time.Hour, Backoff: NewBackoff(time.Millisecond, 4*time.Millisecond, 7)}
	stop := run(t, src, c.sink)
	c.waitFor(t, "the EEW after three failures", func(a []*alert.Alert, errs []error) bool { return len(a) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, errs := c.snapshot()
	if len(errs) != 3 || !strings.Contains(errs[0].Error(), "503") || !strings.Contains(errs[2].Error(), "failure 3") {
		t.Errorf("errors %v", errs)
	}
}

func TestUSGSPoll(t *testing.T) {
	srv := newFakeServer(t)
	srv.set("/feed.geojson", fixture(t, "usgs/usgs_significant_month_20130726.geojson"))
	c := newCollector()
	src := &USGS{URL: srv.URL + "/feed.geojson", Client: srv.Client()}
	ctx := context.Background()
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	first, _ := c.snapshot()
	if len(first) != 6 {
		t.Fatalf("%d alerts, want the feed's 6", len(first))
	}
	// Oldest first.
	for i := 1; i < len(first); i++ {
		if first[i].OriginTime.Before(first[i-1].OriginTime) {
			t.Errorf("alert %d (%v) before alert %d (%v)", i, first[i].OriginTime, i-1, first[i-1].OriginTime)
		}
	}
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	if r := srv.reqs("/feed.geojson"); r[1].Header.Get("If-None-Match") == "" {
		t.Error("second poll not conditional")
	}
	// A feed of 71 other events: all new.
	srv.set("/feed.geojson", fixture(t, "usgs/usgs_4.5_week_20180612.geojson"))
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); len(a) != 6+71 {
		t.Errorf("%d alerts, want 77", len(a))
	}
	// The same feed served again unconditionally (validators lost): the
	// events are known, nothing is delivered twice.
	src.feed = validators{}
	if err := src.Poll(ctx, c.sink); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.snapshot(); len(a) != 77 {
		t.Errorf("%d alerts after a repeated feed, want 77", len(a))
	}
	// A feed that is not GeoJSON is an error.
	srv.set("/feed.geojson", []byte(`{"type":"FeatureCollection","features":[{"type":"Feature"`))
	if err := src.Poll(ctx, c.sink); err == nil {
		t.Error("a truncated feed was accepted")
	}
}

func products(as []*alert.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Product+"/"+string(a.MsgType))
	}
	return out
}

// fixedClock is a clock stopped at t; its timers fire at once.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }
func (c fixedClock) AfterFunc(_ time.Duration, f func()) clock.Timer {
	return time.AfterFunc(0, f)
}

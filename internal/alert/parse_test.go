package alert_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func TestFormatsRegistered(t *testing.T) {
	want := []string{"cap", "jma", "p2pquake", "shakealert", "usgs", "webhook"}
	if got := alert.Formats(); !slices.Equal(got, want) {
		t.Fatalf("Formats() = %v, want %v", got, want)
	}
}

func TestSniffFixtures(t *testing.T) {
	dirFormat := map[string]string{"cap": "cap", "jma": "jma", "other": "shakealert", "p2pquake": "p2pquake", "usgs": "usgs"}
	for _, path := range alerttest.Fixtures(t) {
		want := dirFormat[filepath.Base(filepath.Dir(path))]
		got, err := alert.Sniff(alerttest.Read(t, path))
		if err != nil || got != want {
			t.Errorf("Sniff(%s) = %q, %v; want %q", filepath.Base(path), got, err, want)
		}
	}
}

func TestParseOneOrAll(t *testing.T) {
	feed := alerttest.Fixture(t, "usgs/usgs_significant_month_20130726.geojson")
	if _, err := alert.Parse(feed); !errors.Is(err, alert.ErrMultipleAlerts) || !strings.Contains(err.Error(), "(6)") {
		t.Errorf("Parse(feed of 6) = %v, want ErrMultipleAlerts naming 6", err)
	}
	all, err := alert.ParseAll(feed)
	if err != nil || len(all) != 6 {
		t.Fatalf("ParseAll(feed) = %d alerts, %v", len(all), err)
	}
	empty := []byte(`{"type":"FeatureCollection","features":[]}`)
	if all, err := alert.ParseAll(empty); err != nil || len(all) != 0 {
		t.Errorf("ParseAll(empty feed) = %v, %v", all, err)
	}
	if _, err := alert.Parse(empty); !errors.Is(err, alert.ErrNoAlert) {
		t.Errorf("Parse(empty feed) = %v, want ErrNoAlert", err)
	}
	doc := alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	a, err := alert.ParseFormat("jma", doc)
	if err != nil || a.Product != "VXSE43" {
		t.Fatalf("ParseFormat(jma) = %v, %v", a, err)
	}
	if _, err := alert.ParseFormat("cap", doc); err == nil || !strings.Contains(err.Error(), "cap:") {
		t.Errorf("a JMA document parsed as CAP: %v", err)
	}
	if _, err := alert.ParseFormat("nope", doc); !errors.Is(err, alert.ErrUnknownFormat) || !strings.Contains(err.Error(), "known: cap, jma") {
		t.Errorf("ParseFormat(nope) = %v", err)
	}
}

func TestParseRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		want string
		is   error
	}{
		"empty":             {"", "empty document", alert.ErrUnknownFormat},
		"text":              {"hello", "neither XML nor JSON", alert.ErrUnknownFormat},
		"unknown XML":       {"<feed xmlns='http://www.w3.org/2005/Atom'/>", `<feed> in namespace "http://www.w3.org/2005/Atom"`, alert.ErrUnknownFormat},
		"unknown JSON":      {`{"a": 1, "b": [1]}`, "JSON object with members a, b", alert.ErrUnknownFormat},
		"JSON array":        {`[1, 2]`, "array of non-objects", alert.ErrUnknownFormat},
		"broken XML prolog": {"<?xml <a/>", "malformed XML before the root", alert.ErrUnknownFormat},
		"too large":         {"<Report>" + strings.Repeat(" ", alert.MaxDocumentSize), "too large", alert.ErrTooLarge},
		"truncated JMA":     {"<Report xmlns='http://xml.kishou.go.jp/jmaxml1/'><Control>", "jma: malformed XML: document ends inside an element", nil},
		"truncated USGS":    {`{"type":"FeatureCollection","features":[{"type":"Feature",`, "usgs: malformed JSON: document ends early", nil},
		"deep CAP":          {"<alert>" + strings.Repeat("<info>", 40), "cap: document nested too deeply", alert.ErrTooDeep},
	} {
		_, err := alert.ParseAll([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v is not %v", name, err, tc.is)
		}
	}
}

func TestParseTakesABOMAndLeadingSpace(t *testing.T) {
	doc := alerttest.Fixture(t, "cap/oasisspec_example2.xml")
	if _, err := alert.Parse(append([]byte("\n  "), doc...)); err != nil {
		t.Errorf("leading white space: %v", err)
	}
	// encoding/xml takes a UTF-8 byte order mark before the declaration.
	if _, err := alert.Parse(append([]byte("\uFEFF"), bytes.TrimSpace(doc)...)); err != nil {
		t.Errorf("byte order mark: %v", err)
	}
}

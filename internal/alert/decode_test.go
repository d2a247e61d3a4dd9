package alert

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// endless is a reader of unlimited spaces that counts what was read.
type endless struct{ n int64 }

func (r *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestReadDocumentStopsAtTheLimit(t *testing.T) {
	r := &endless{}
	_, err := ReadDocument(io.LimitReader(r, 100<<20)) // a 100 MB document
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if r.n > MaxDocumentSize+1 {
		t.Fatalf("read %d bytes of a 100 MB document, want at most %d", r.n, MaxDocumentSize+1)
	}
	data, err := ReadDocument(strings.NewReader("<a/>"))
	if err != nil || string(data) != "<a/>" {
		t.Fatalf("got %q, %v", data, err)
	}
}

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func TestDecodeXMLRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		want string
		is   error
	}{
		"deep":             {nested("<a>", "</a>", MaxNesting+1), "more than 32 levels deep", ErrTooDeep},
		"very deep":        {nested("<a>", "</a>", 100000), "levels deep", ErrTooDeep},
		"truncated":        {"<a><b>text</b>", "ends inside an element", nil},
		"mismatched":       {"<a><b></a>", "malformed XML", nil},
		"empty":            {"", "no root element", nil},
		"two roots":        {"<a/><b/>", "after the root element", nil},
		"text after root":  {"<a/>junk", "text outside the root element", nil},
		"doctype":          {`<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`, "DOCTYPE", nil},
		"charset":          {`<?xml version="1.0" encoding="Shift_JIS"?><a/>`, "Shift_JIS", nil},
		"bad utf-8":        {"<a>\xff</a>", "invalid UTF-8", nil},
		"undefined entity": {"<a>&nbsp;</a>", "malformed XML", nil},
		"too large":        {"<a>" + strings.Repeat(" ", MaxDocumentSize) + "</a>", "too large", ErrTooLarge},
	} {
		var v struct{}
		err := DecodeXML("test", []byte(tc.doc), &v)
		var pe *ParseError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &pe) || pe.Format != "test" {
			t.Errorf("%s: got %v, want a test ParseError containing %q", name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v is not %v", name, err, tc.is)
		}
	}
	var v struct{}
	if err := DecodeXML("test", []byte(`<?xml version="1.0"?><!-- c --><a><b/></a><!-- after -->`+"\n"), &v); err != nil {
		t.Errorf("a document with comments is refused: %v", err)
	}
	if err := DecodeXML("test", []byte(nested("<a>", "</a>", MaxNesting)), &v); err != nil {
		t.Errorf("a document exactly MaxNesting deep is refused: %v", err)
	}
}

func TestDecodeJSONRefusals(t *testing.T) {
	type doc struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	for name, tc := range map[string]struct {
		doc    string
		strict bool
		want   string
	}{
		"deep":          {nested("[", "]", MaxNesting+1), false, "more than 32 levels"},
		"very deep":     {nested("[", "]", 1000000), false, "levels"},
		"truncated":     {`{"n": 1, "s": "x`, false, "truncated"},
		"trailing":      {`{"n": 1} {"n": 2}`, false, "data after the top-level value"},
		"wrong type":    {`{"n": "one"}`, false, "n: got a JSON string, want int"},
		"unknown field": {`{"n": 1, "x": 2}`, true, "x: unknown field"},
		"empty":         {``, false, "truncated"},
		"not json":      {`<a/>`, false, "malformed JSON"},
	} {
		var v doc
		decode := DecodeJSON
		if tc.strict {
			decode = DecodeJSONStrict
		}
		err := decode("test", []byte(tc.doc), &v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
	var v doc
	if err := DecodeJSON("test", []byte(`{"n": 1, "s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"{{{{"}`), &v); err != nil || v.N != 1 {
		t.Errorf("brackets inside strings counted as nesting: %v", err)
	}
	if err := DecodeJSON("test", []byte(`{"n": 1, "x": 2}`), &v); err != nil {
		t.Errorf("unknown members refused by the lenient decoder: %v", err)
	}
}

func TestDigest(t *testing.T) {
	if got := Digest([]byte("abc")); got != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal(got)
	}
}

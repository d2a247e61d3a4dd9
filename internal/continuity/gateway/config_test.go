package gateway

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/validate"
)

func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("testdata/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.drain().String() != "30s" || len(c.Services) != 4 {
		t.Fatalf("%+v", c)
	}
	if _, err := New(*c, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	doc := `
site: ""
admin_token_file: /x
drain_timeout: -1s
listeners:
  - name: web
    listen: "0.0.0.0"
    protocol: https
  - name: web
    listen: ":80"
    protocol: http
  - name: ssh
    listen: ":22"
    protocol: tcp
services:
  - name: a
    listener: wbe
    backend: 10.0.0.1:80
  - name: a
    listener: web
    hosts: ["bad host"]
    backend: "10.0.0.1"
  - name: b
    listener: web
    backend: 10.0.0.2:80
  - name: c
    listener: ssh
    hosts: [x.example]
    backend: 10.0.0.3:22
  - name: d
    listener: ssh
    backend: 10.0.0.4:22
  - name: e
    listener: web
    default: true
    backend: 10.0.0.5:80
    backends: [10.0.0.5:80]
  - name: f
    listener: web
    hosts: [f.example]
    backends: [10.0.0.6:80, "10.0.0.7", 10.0.0.6:80]
`
	_, err := ParseConfig([]byte(doc))
	list, ok := err.(validate.List)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		"admin_token_file", "drain_timeout", "listeners[0].listen", "listeners[0].protocol", "listeners[1].name",
		"services[0].listener", "services[1].backend", "services[1].hosts[0]", "services[1].name", "services[2].hosts",
		"services[3].hosts", "services[4].listener", "services[5].backends", "services[6].backends[1]", "services[6].backends[2]", "site",
	}
	if got := list.Paths(); !slices.Equal(got, want) {
		t.Fatalf("paths %v\nwant  %v\n%v", got, want, err)
	}
	if !strings.Contains(err.Error(), `did you mean "web"?`) {
		t.Fatalf("no suggestion: %v", err)
	}
	if _, err := ParseConfig([]byte("site: x\nlisteners: []\nservices: []\nbogus: 1\n")); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown field: %v", err)
	}
}

// FuzzParseConfig: never panics, and a configuration it accepts builds a
// gateway.
func FuzzParseConfig(f *testing.F) {
	b, err := os.ReadFile("testdata/gateway.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("site: s\nlisteners: [{name: l, listen: ':1', protocol: tcp}]\nservices: [{name: a, listener: l, backend: 'h:1'}]\n"))
	f.Add([]byte("site: s\nlisteners: [{name: l, listen: ':1', protocol: tcp}]\nservices: [{name: a, listener: l, backends: ['h:1', 'h:2']}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if _, err := New(*c, Options{}); err != nil {
			t.Fatalf("accepted config does not build: %v", err)
		}
	})
}

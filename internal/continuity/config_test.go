package continuity

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/model"
)

func configFederation() *model.Federation {
	return &model.Federation{
		Name: "two",
		Sites: []model.Site{
			{Name: "kochi", Gateway: []string{"192.0.2.1"}},
			{Name: "tokyo", Gateway: []string{"192.0.2.2", "2001:db8::2"}},
		},
		Services: []model.Service{
			{Name: "moodle", FQDN: "moodle.example.test", Port: 80},
			{Name: "db"},
		},
	}
}

const goodConfig = `
dns:
  server: 127.0.0.1:5353
  zone: example.test.
  key_name: refuge-update.
  secret_file: tsig.secret
  drill_zone: drill.example.test.
gateways:
  kochi: {admin_url: "http://10.0.1.1:9180/", token_file: kochi.token}
  tokyo: {admin_url: "http://10.0.2.1:9180"}
services:
  moodle:
    backend: 10.9.0.5
    backends: {tokyo: "10.2.0.5:8080, 10.2.0.6:8080"}
`

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"c.yaml": doc, "tsig.secret": "c2VjcmV0\n", "kochi.token": "tok-kochi\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "c.yaml")
}

func TestBuild(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) string { return map[string]string{EnvGatewayToken: "tok-env"}[k] }
	c, err := Build(configFederation(), cfg, BuildOptions{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Services["moodle"]
	if m.FQDN != "moodle.example.test." || m.Route != "moodle" || fmt.Sprint(m.Backends["kochi"]) != "[10.9.0.5:80]" || fmt.Sprint(m.Backends["tokyo"]) != "[10.2.0.5:8080 10.2.0.6:8080]" {
		t.Errorf("moodle %+v", m)
	}
	if db := c.Services["db"]; db.FQDN != "" || db.Route != "" {
		t.Errorf("db %+v: not managed", db)
	}
	k, ok := c.Sites["kochi"].Routes.(*GatewayClient)
	if !ok || k.URL != "http://10.0.1.1:9180" || k.Token != "tok-kochi" {
		t.Errorf("kochi gateway %+v", c.Sites["kochi"].Routes)
	}
	if tk := c.Sites["tokyo"].Routes.(*GatewayClient); tk.Token != "tok-env" {
		t.Errorf("tokyo token %q, want the environment's", tk.Token)
	}
	if got := len(c.Sites["tokyo"].Gateway); got != 2 {
		t.Errorf("tokyo gateway addresses %d", got)
	}
	if got := c.ServiceNames(); len(got) != 1 || got[0] != "moodle" {
		t.Errorf("service names %v", got)
	}

	d, err := Build(configFederation(), cfg, BuildOptions{Drill: true, Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Services["moodle"].FQDN; got != "moodle.drill.example.test." {
		t.Errorf("drill name %q", got)
	}
	for name, s := range d.Sites {
		if s.Routes != nil {
			t.Errorf("a drill reaches the gateway at %s", name)
		}
	}
}

func TestBuildBadInput(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		name  string
		edit  func(fed *model.Federation, doc string) string
		drill bool
		want  []string
	}{
		{"unknown site", func(_ *model.Federation, doc string) string {
			return strings.Replace(doc, "  kochi: {admin", "  kochi2: {admin", 1)
		}, false, []string{`continuity gateways.kochi2: unknown site "kochi2" (did you mean "kochi"?)`}},
		{"unknown backend site", func(_ *model.Federation, doc string) string {
			return strings.Replace(doc, "{tokyo: ", "{osaka: ", 1)
		}, false, []string{`continuity services.moodle.backends.osaka: unknown site "osaka" (the federation has: kochi, tokyo)`}},
		{"unknown service", func(_ *model.Federation, doc string) string {
			return strings.Replace(doc, "  moodle:\n", "  modle:\n", 1)
		}, false, []string{`continuity services.modle: unknown service "modle" (did you mean "moodle"?)`}},
		{"name outside the zone", func(fed *model.Federation, doc string) string {
			fed.Services[0].FQDN = "moodle.example.org"
			return doc
		}, false, []string{"federation services[0].fqdn: moodle.example.org. is outside the zone refuge updates (continuity dns.zone example.test.)"}},
		{"no port", func(fed *model.Federation, doc string) string {
			fed.Services[0].Port = 0
			return doc
		}, false, []string{`continuity services.moodle.backend: backend "10.9.0.5" has no port and the service has none: give ip:port, or the service a port (federation services[0].port)`}},
		{"drill without a drill zone", func(_ *model.Federation, doc string) string {
			return strings.Replace(doc, "  drill_zone: drill.example.test.\n", "", 1)
		}, true, []string{"continuity dns.drill_zone: a drill needs a zone of its own"}},
		{"missing secret", func(_ *model.Federation, doc string) string {
			return strings.Replace(doc, "  secret_file: tsig.secret\n", "", 1)
		}, false, []string{"continuity dns.secret_file: no TSIG secret: name a file holding it, or set $REFUGE_TSIG_SECRET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fed := configFederation()
			cfg, err := LoadConfig(writeConfig(t, tc.edit(fed, goodConfig)))
			if err == nil {
				_, err = Build(fed, cfg, BuildOptions{Drill: tc.drill, Getenv: env})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`
dns: {server: "dns.example", zone: "bad..zone", key_name: k, drill_zone: bad..zone, net: sctp}
gateways:
  kochi: {admin_url: "10.0.1.1:9180"}
services:
  moodle: {backend: "moodle.example", backends: {kochi: "10.0.0.1,", tokyo: "10.0.0.2, 10.0.0.2"}}
  db: {}
typo: 1
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"dns.server", "dns.zone", "dns.net", "dns.drill_zone", "gateways.kochi.admin_url", "services.moodle.backend", "services.moodle.backends.kochi: \"10.0.0.1,\": an empty address",
		`services.moodle.backends.tokyo: "10.0.0.2" is listed twice`, "services.db: needs backend", "typo"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nwant it to name %q", err, w)
		}
	}
}

// FuzzParseConfig: the continuity file's parser never panics, and a file
// it accepts builds against the test federation or fails with an error
// (never a panic). Seeds in testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("services:\n  moodle: {backend: \"10.0.0.1, 10.0.0.2:8080\", backends: {tokyo: \"[2001:db8::1]:80,10.2.0.5\"}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		env := func(string) string { return "c2VjcmV0" }
		_, _ = Build(configFederation(), cfg, BuildOptions{Getenv: env})
		_, _ = Build(configFederation(), cfg, BuildOptions{Getenv: env, Drill: true})
	})
}

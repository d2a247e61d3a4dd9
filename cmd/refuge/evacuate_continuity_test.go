package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvacuateContinuityBadInput: --drill needs --continuity, and a
// continuity file that names a site the federation lacks fails before
// anything starts, naming the field.
func TestEvacuateContinuityBadInput(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "continuity.yaml")
	doc := "dns: {server: \"127.0.0.1:53\", zone: example.ac.jp., key_name: k, drill_zone: drill.example.ac.jp.}\n" +
		"gateways:\n  kochl: {admin_url: \"http://10.0.1.1:9180\"}\n"
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REFUGE_TSIG_SECRET", "c2VjcmV0")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--drill"}, "--drill exercises continuity: give --continuity FILE"},
		{[]string{"--drill", "--continuity", conf}, `continuity gateways.kochl: unknown site "kochl" (did you mean "kochi"?)`},
	} {
		var out, errb bytes.Buffer
		root := newRoot(&out, &errb)
		root.SetArgs(append([]string{"evacuate", "--federation", "../../examples/nankai-trough/federation.yaml", "--site", "kochi"}, tc.args...))
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

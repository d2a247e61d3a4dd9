package main

import (
	"strings"
	"testing"
)

func TestGatewayCheckAndHelp(t *testing.T) {
	out, _, err := runCLI(t, "gateway", "--config", "../../internal/continuity/gateway/testdata/gateway.yaml", "--check")
	if err != nil || !strings.Contains(out, "valid (3 listeners, 4 services)") {
		t.Fatalf("check: %q %v", out, err)
	}
	if _, _, err := runCLI(t, "gateway"); err == nil || !strings.Contains(err.Error(), "--config is required") {
		t.Fatalf("no config: %v", err)
	}
	out, _, _ = runCLI(t, "gateway", "--help")
	for _, want := range []string{"TSIG key", "A gateway per site", "service record", "/v1/routes/"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

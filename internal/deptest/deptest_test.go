package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/refuge-project/refuge/"

// rules: a package (not its subpackages) and the packages none of its
// dependencies may be (each also forbids their subpackages).
var rules = []struct {
	pkg    string
	forbid []string
}{
	// The planner is a pure function of a snapshot: no drivers, no state,
	// no API.
	{"internal/planner", []string{"internal/hypervisor", "internal/store", "internal/server", "internal/executor", "internal/controller", "internal/sim"}},
	// Alert parsing knows nothing of evacuating.
	{"internal/alert", []string{"internal/executor", "internal/planner", "internal/hypervisor", "internal/store", "internal/server"}},
	// Placement decides; consolidation (its subpackage) acts.
	{"internal/placement", []string{"internal/planner", "internal/hypervisor", "internal/executor"}},
	// The store is storage: it runs nothing.
	{"internal/store", []string{"internal/executor", "internal/controller", "internal/server", "internal/hypervisor", "internal/planner"}},
	// The API's types and its client need nothing of the server side:
	// commands that only call a controller do not drag etcd's server or
	// the simulator along.
	{"internal/api", []string{"internal/store", "internal/server", "internal/controller", "internal/hypervisor", "internal/executor", "go.etcd.io/etcd"}},
	// The alert pipeline decides and hands deadlines to a target: the
	// worlds it may drive (simulated or libvirt) plug in from outside.
	{"internal/pipeline", []string{"internal/hypervisor/simhv", "internal/sim", "internal/evacsim", "internal/hypervisor/libvirt", "internal/world", "internal/controller", "internal/store", "internal/server"}},
	// The worlds are drivers with a clock: no controller, state or API
	// above them.
	{"internal/world", []string{"internal/controller", "internal/store", "internal/server", "internal/daemon"}},
	// The daemons' shared parts need neither the controller nor its state.
	{"internal/daemon", []string{"internal/controller", "internal/store", "internal/server"}},
	// The controller is what the API server calls, never the reverse.
	{"internal/controller", []string{"internal/server", "internal/client"}},
	// Evacuating real hosts needs no controller, store or API.
	{"internal/evacuate", []string{"internal/controller", "internal/store", "internal/server"}},
	{"internal/client", []string{"internal/store", "internal/server", "internal/controller", "internal/hypervisor", "internal/sim", "go.etcd.io/etcd"}},
}

func TestLayering(t *testing.T) {
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", mod+r.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", r.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range r.forbid {
				full := f
				if strings.HasPrefix(f, "internal/") {
					full = mod + f
				}
				if dep == full || strings.HasPrefix(dep, full+"/") {
					t.Errorf("%s depends on %s (forbidden: %s)", r.pkg, dep, f)
				}
			}
		}
	}
}

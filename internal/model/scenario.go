package model

// Scenario is what happens to the federation: which sites are threatened and
// by when (their deadlines), and a timed list of events. Times are offsets
// from the scenario's start (the moment the warning arrives).
//
// Deriving threats from real alerts is the threat package's job; a scenario
// is the seam between the two.
type Scenario struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Threats     []Threat `json:"threats"`
	Events      []Event  `json:"events,omitempty"`
}

// Threat says that a site will be lost (power, flooding, maintenance) at
// Deadline; VMs still there then are lost with it.
type Threat struct {
	Site     string   `json:"site"`
	Deadline Duration `json:"deadline"`
	Hazard   string   `json:"hazard,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// EventKind names a scenario event.
type EventKind string

// Scenario event kinds.
const (
	// EventSiteLost: every host of Site stops at At (unannounced loss).
	EventSiteLost EventKind = "site_lost"
	// EventHostFailed: Host stops at At.
	EventHostFailed EventKind = "host_failed"
	// EventLinkDegraded: Link's bandwidth becomes BandwidthMbps at At.
	EventLinkDegraded EventKind = "link_degraded"
	// EventLinkCut: Link carries nothing from At.
	EventLinkCut EventKind = "link_cut"
	// EventDeadlineChanged: Site's deadline becomes Deadline (an updated
	// warning); a site not threatened before becomes threatened.
	EventDeadlineChanged EventKind = "deadline_changed"
)

// EventKinds lists the kinds in documentation order.
var EventKinds = []EventKind{EventSiteLost, EventHostFailed, EventLinkDegraded, EventLinkCut, EventDeadlineChanged}

// Event is one timed change.
type Event struct {
	At            Duration  `json:"at"`
	Kind          EventKind `json:"kind"`
	Site          string    `json:"site,omitempty"`
	Host          string    `json:"host,omitempty"`
	Link          string    `json:"link,omitempty"`
	BandwidthMbps float64   `json:"bandwidth_mbps,omitempty"`
	Deadline      Duration  `json:"deadline,omitempty"`
}

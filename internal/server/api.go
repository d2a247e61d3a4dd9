package server

import (
	"fmt"
	"time"

	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/store"
)

// DefaultDeadline is an evacuation's deadline when the request gives none.
const DefaultDeadline = 30 * time.Minute

// SiteDeadline names a site and the time left before it is lost.
type SiteDeadline struct {
	Site string `json:"site" doc:"site name"`
	// Deadline is a Go duration ("10m", "1h30m"); default 30m.
	Deadline string `json:"deadline,omitempty" doc:"time left before the site is lost, e.g. 10m (default 30m)"`
}

// SitesRequest is the body of evacuations, plans and drills: one site
// (site, deadline) or several (sites).
type SitesRequest struct {
	Site     string         `json:"site,omitempty" doc:"one site to evacuate"`
	Deadline string         `json:"deadline,omitempty" doc:"its deadline, e.g. 10m (default 30m)"`
	Sites    []SiteDeadline `json:"sites,omitempty" doc:"several sites, each with its deadline"`
}

// sites validates the request and returns the sites with deadlines.
func (q *SitesRequest) sites() ([]controller.SiteRequest, []FieldError) {
	var out []controller.SiteRequest
	var errs []FieldError
	add := func(field, site, deadline string) {
		d := DefaultDeadline
		if site == "" {
			errs = append(errs, FieldError{Field: field + "site", Message: "required: a site name"})
		}
		if deadline != "" {
			v, err := time.ParseDuration(deadline)
			switch {
			case err != nil:
				errs = append(errs, FieldError{Field: field + "deadline", Message: fmt.Sprintf("%q is not a duration such as 10m", deadline)})
			case v <= 0:
				errs = append(errs, FieldError{Field: field + "deadline", Message: "must be positive"})
			}
			d = v
		}
		out = append(out, controller.SiteRequest{Site: site, Deadline: d})
	}
	switch {
	case q.Site != "" && len(q.Sites) > 0:
		errs = append(errs, FieldError{Field: "sites", Message: "give either site or sites, not both"})
	case len(q.Sites) > 0:
		if q.Deadline != "" {
			errs = append(errs, FieldError{Field: "deadline", Message: "with sites, give each site's deadline"})
		}
		for i, s := range q.Sites {
			add(fmt.Sprintf("sites[%d].", i), s.Site, s.Deadline)
		}
	default:
		add("", q.Site, q.Deadline)
	}
	return out, errs
}

// Accepted answers a request that started an operation (202).
type Accepted struct {
	OperationID string           `json:"operation_id"`
	Operation   *store.Operation `json:"operation"`
}

// OperationDetail is an operation with its per-VM progress.
type OperationDetail struct {
	store.Operation
	VMs []store.VMStep `json:"vms"`
}

// TokenRequest creates a token.
type TokenRequest struct {
	Role string `json:"role" doc:"viewer, operator, admin or alert-relay"`
	Name string `json:"name,omitempty" doc:"who or what uses it"`
}

// TokenCreated holds a new token's secret, shown once.
type TokenCreated struct {
	Token string     `json:"token"`
	ID    string     `json:"id"`
	Name  string     `json:"name,omitempty"`
	Role  store.Role `json:"role"`
}

// ActionRequest is the (empty) body of pause, resume and cancel.
type ActionRequest struct{}

// Health answers /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// VMInfo is a VM and where it runs now.
type VMInfo struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Site     string `json:"site"`
	Service  string `json:"service,omitempty"`
	MemoryMi int64  `json:"memory_mib"`
	VCPU     int    `json:"vcpu"`
	Priority int    `json:"priority,omitempty"`
	Lost     bool   `json:"lost,omitempty"`
}

// HostInfo is a host and its state.
type HostInfo struct {
	Name      string `json:"name"`
	Site      string `json:"site"`
	Up        bool   `json:"up"`
	VMs       int    `json:"vms"`
	MemoryMiB int64  `json:"memory_mib"`
	UsedMiB   int64  `json:"used_mib"`
}

// ServiceInfo is a service and where its VMs run.
type ServiceInfo struct {
	Name      string   `json:"name"`
	DependsOn []string `json:"depends_on,omitempty"`
	VMs       []string `json:"vms"`
	Sites     []string `json:"sites"`
}

// AlertAccepted answers a posted alert.
type AlertAccepted struct {
	Alerts int    `json:"alerts"`
	Detail string `json:"detail"`
}

// DecisionRequest approves or declines an evacuation held for approval.
type DecisionRequest struct {
	ID       string `json:"id" doc:"the approval's id: a site, or drill/SITE"`
	Decision string `json:"decision" doc:"approve or decline"`
}

// Package api holds the wire types of refuge's controller API (package
// server), shared by the server, the controller, the store and the client,
// so that a client needs none of the server's dependencies (etcd, the
// simulator).
package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Role is what a token may do.
type Role string

// Roles, from least to most allowed; RoleAlertRelay may only post alerts.
const (
	RoleViewer     Role = "viewer"
	RoleOperator   Role = "operator"
	RoleAdmin      Role = "admin"
	RoleAlertRelay Role = "alert-relay"
)

// Roles lists every role.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin, RoleAlertRelay}

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q: want viewer, operator, admin or alert-relay", s)
}

// Token is an API token as stored: never the secret, only its hash.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
}

// Operation kinds.
const (
	KindEvacuation = "evacuation"
	KindDrill      = "drill"
)

// Operation statuses. An operation is live while pending, running or
// paused; the others are final.
const (
	OpPending   = "pending"
	OpRunning   = "running"
	OpPaused    = "paused"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
	OpCancelled = "cancelled"
)

// Live reports whether an operation with this status still has work.
func Live(status string) bool {
	return status == OpPending || status == OpRunning || status == OpPaused
}

// SiteDeadline is one threatened site and the absolute time it is lost.
type SiteDeadline struct {
	Site     string    `json:"site"`
	Deadline time.Time `json:"deadline"`
}

// Progress counts an operation's VMs by state.
type Progress struct {
	Total    int `json:"total"`
	Migrated int `json:"migrated"`
	Running  int `json:"running"`
	Pending  int `json:"pending"`
	Failed   int `json:"failed"`
	Missed   int `json:"missed"`
	Lost     int `json:"lost"`
	Unsaved  int `json:"unsaved"`
}

// Operation is long work (an evacuation, a drill) with an id, status and
// progress.
type Operation struct {
	ID        string         `json:"id"`
	Kind      string         `json:"kind"`
	Status    string         `json:"status"`
	Sites     []SiteDeadline `json:"sites"`
	Policy    string         `json:"policy,omitempty"`
	CreatedBy string         `json:"created_by,omitempty"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
	// Leader is the controller that runs it now; Resumes counts how often
	// another controller took it over.
	Leader   string   `json:"leader,omitempty"`
	Resumes  int      `json:"resumes"`
	Error    string   `json:"error,omitempty"`
	Progress Progress `json:"progress"`
	// Result holds a drill's summary.
	Result json.RawMessage `json:"result,omitempty"`
}

// VM step states in the journal.
const (
	// VMStarting: the start of a migration is about to be asked of the
	// driver (intent written); whether it happened is in doubt until its
	// result is written.
	VMStarting = "starting"
	// VMRunning: the driver started the migration.
	VMRunning = "running"
	// VMMigrated: it ended at the destination.
	VMMigrated = "migrated"
	// VMPending: not moved (yet): a refused start or a failed attempt.
	VMPending = "pending"
	// Final statuses written when an operation ends take the executor's
	// names (missed, unsaved, lost, failed, safe, stranded, aborted).
)

// VMStep is the journal's record of one VM in an operation.
type VMStep struct {
	VM      string    `json:"vm"`
	State   string    `json:"state"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
}

// Change is one change to operations or their steps.
type Change struct {
	Operation *Operation `json:"operation,omitempty"`
	Step      *VMStep    `json:"step,omitempty"`
	// OperationID names the step's operation.
	OperationID string `json:"operation_id"`
	Revision    int64  `json:"revision"`
}

// AuditEntry records one write through the API, or one step of the alert
// pipeline (docs/api.md): who, what, when.
type AuditEntry struct {
	At     time.Time `json:"at"`
	Token  string    `json:"token"`
	Name   string    `json:"name,omitempty"`
	Role   Role      `json:"role"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	// Detail: the operation started, or why the request was refused.
	Detail string `json:"detail,omitempty"`
	// Operation is the operation the write started or changed (the alert
	// pipeline's automatic actions).
	Operation string `json:"operation,omitempty"`
}

// SiteStatus is one site in Status.
type SiteStatus struct {
	Name    string `json:"name"`
	Hosts   int    `json:"hosts"`
	HostsUp int    `json:"hosts_up"`
	VMs     int    `json:"vms"`
	// Deadline is set while a live operation evacuates the site.
	Deadline  *time.Time `json:"deadline,omitempty"`
	Operation string     `json:"operation,omitempty"`
}

// Status is the federation and the controllers at a glance.
type Status struct {
	Controller string         `json:"controller"`
	Leader     string         `json:"leader"`
	IsLeader   bool           `json:"is_leader"`
	Time       time.Time      `json:"time"`
	Sites      []SiteStatus   `json:"sites"`
	VMs        int            `json:"vms"`
	VMsLost    int            `json:"vms_lost"`
	Operations []OperationRef `json:"operations"`
}

// OperationRef names a live operation.
type OperationRef struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
}

// Action is what Control does to a live evacuation.
type Action string

// Actions on an evacuation.
const (
	ActPause  Action = "pause"
	ActResume Action = "resume"
	ActCancel Action = "cancel"
)

// DefaultDeadline is an evacuation's deadline when the request gives none.
const DefaultDeadline = 30 * time.Minute

// SiteRequest names a site and the time left before it is lost.
type SiteRequest struct {
	Site string `json:"site" doc:"site name"`
	// Deadline is a Go duration ("10m", "1h30m"); default 30m.
	Deadline string `json:"deadline,omitempty" doc:"time left before the site is lost, e.g. 10m (default 30m)"`
}

// SitesRequest is the body of evacuations, plans and drills: one site
// (site, deadline) or several (sites).
type SitesRequest struct {
	Site     string        `json:"site,omitempty" doc:"one site to evacuate"`
	Deadline string        `json:"deadline,omitempty" doc:"its deadline, e.g. 10m (default 30m)"`
	Sites    []SiteRequest `json:"sites,omitempty" doc:"several sites, each with its deadline"`
}

// Accepted answers a request that started an operation (202).
type Accepted struct {
	OperationID string     `json:"operation_id"`
	Operation   *Operation `json:"operation"`
}

// OperationDetail is an operation with its per-VM progress.
type OperationDetail struct {
	Operation
	VMs []VMStep `json:"vms"`
}

// TokenRequest creates a token.
type TokenRequest struct {
	Role string `json:"role" doc:"viewer, operator, admin or alert-relay"`
	Name string `json:"name,omitempty" doc:"who or what uses it"`
}

// TokenCreated holds a new token's secret, shown once.
type TokenCreated struct {
	Token string `json:"token"`
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Role  Role   `json:"role"`
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

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists field-level errors of a request body.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid field of a request body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

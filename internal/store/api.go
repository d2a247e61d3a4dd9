package store

import "github.com/refuge-project/refuge/internal/api"

// The store keeps the API's types (package api).
type (
	Role         = api.Role
	Token        = api.Token
	SiteDeadline = api.SiteDeadline
	Progress     = api.Progress
	Operation    = api.Operation
	VMStep       = api.VMStep
	Change       = api.Change
	AuditEntry   = api.AuditEntry
)

// Roles (see api).
const (
	RoleViewer     = api.RoleViewer
	RoleOperator   = api.RoleOperator
	RoleAdmin      = api.RoleAdmin
	RoleAlertRelay = api.RoleAlertRelay
)

// Roles lists every role.
var Roles = api.Roles

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) { return api.ParseRole(s) }

// Operation kinds, statuses and VM journal states (see api).
const (
	KindEvacuation = api.KindEvacuation
	KindDrill      = api.KindDrill
	OpPending      = api.OpPending
	OpRunning      = api.OpRunning
	OpPaused       = api.OpPaused
	OpSucceeded    = api.OpSucceeded
	OpFailed       = api.OpFailed
	OpCancelled    = api.OpCancelled
	VMStarting     = api.VMStarting
	VMRunning      = api.VMRunning
	VMMigrated     = api.VMMigrated
	VMPending      = api.VMPending
)

// Live reports whether an operation with this status still has work.
func Live(status string) bool { return api.Live(status) }

package server

import "github.com/refuge-project/refuge/internal/api"

// The server's request and response types are the API's (package api).
type (
	SiteRequest     = api.SiteRequest
	SitesRequest    = api.SitesRequest
	Accepted        = api.Accepted
	OperationDetail = api.OperationDetail
	TokenRequest    = api.TokenRequest
	TokenCreated    = api.TokenCreated
	ActionRequest   = api.ActionRequest
	Health          = api.Health
	VMInfo          = api.VMInfo
	HostInfo        = api.HostInfo
	ServiceInfo     = api.ServiceInfo
	AlertAccepted   = api.AlertAccepted
	DecisionRequest = api.DecisionRequest
	Problem         = api.Problem
	FieldError      = api.FieldError
)

// DefaultDeadline is an evacuation's deadline when the request gives none.
const DefaultDeadline = api.DefaultDeadline

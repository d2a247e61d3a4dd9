package controller

import (
	"github.com/refuge-project/refuge/internal/api"
	"github.com/refuge-project/refuge/internal/planner"
)

// The controller answers with the API's types (package api).
type (
	SiteStatus   = api.SiteStatus
	Status       = api.Status
	OperationRef = api.OperationRef
	Action       = api.Action
)

// Actions on an evacuation.
const (
	ActPause  = api.ActPause
	ActResume = api.ActResume
	ActCancel = api.ActCancel
)

// PlanSummary is a dry-run plan.
type PlanSummary struct {
	AtRisk      int           `json:"at_risk"`
	Moves       int           `json:"moves"`
	Unsaved     int           `json:"unsaved"`
	UpperBound  int           `json:"upper_bound"`
	LowerBoundS float64       `json:"lower_bound_s"`
	MakespanS   float64       `json:"makespan_s"`
	Bottleneck  string        `json:"bottleneck"`
	Warnings    []string      `json:"warnings,omitempty"`
	Plan        *planner.Plan `json:"plan"`
}

package controller

import (
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/world"
)

// World is the federation a controller acts on: simulated or real hosts
// (package world).
type World = world.World

// NewSimWorld builds the simulated federation a controller acts on,
// Speed times faster than real time; Run drives it.
func NewSimWorld(f *model.Federation, speed float64) (*world.Sim, error) {
	return world.NewSim(world.SimConfig{Federation: f, Speed: speed})
}

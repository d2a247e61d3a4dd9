// Package deptest holds the test that keeps refuge's layering: packages
// that must stay pure (the planner, alert parsing, placement, the store)
// may not import the layers above or beside them, as Tailscale's deptest
// does.
package deptest

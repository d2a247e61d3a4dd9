package simhv

import (
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/precopy"
)

// switchRec is a hypervisor.SwitchoverObserver recording when SwitchedOver
// came and how many results were in by then.
type switchRec struct {
	recorder
	c      *Cluster
	at     []time.Duration
	before []int
}

func (s *switchRec) SwitchedOver() {
	s.at = append(s.at, s.c.Engine().Elapsed())
	s.before = append(s.before, len(s.results))
}

func TestSwitchedOverBeforeMigrationDone(t *testing.T) {
	c := newCluster(t, triangle)
	s := &switchRec{c: c}
	start(t, c, req(c, "web", "c1"), s)
	c.Engine().Run()
	res := s.one(t)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(s.at) != 1 || s.before[0] != 0 || s.at[0] != res.Finished.Sub(epoch) {
		t.Errorf("SwitchedOver at %v with %v results in, want once at the end of the switch-over (%v) before MigrationDone", s.at, s.before, res.Finished.Sub(epoch))
	}
}

func TestSwitchedOverWhenPostCopyStartsTheGuest(t *testing.T) {
	c := newCluster(t, triangle)
	s := &switchRec{c: c}
	r := req(c, "hot", "b1")
	r.Params.PostCopy = true
	j := start(t, c, r, s)
	inThirdRound(t, c, j)
	switchedAt := c.Engine().Elapsed()
	if err := j.StartPostCopy(); err != nil {
		t.Fatal(err)
	}
	c.Engine().Run()
	res := s.one(t)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(s.at) != 1 || s.before[0] != 0 || s.at[0] != switchedAt+precopy.SwitchoverOverhead || s.at[0] >= res.Finished.Sub(epoch) {
		t.Errorf("SwitchedOver at %v, want once at %v (the guest runs at the destination), before the end %v",
			s.at, switchedAt+precopy.SwitchoverOverhead, res.Finished.Sub(epoch))
	}
}

func TestNoSwitchedOverWhenAborted(t *testing.T) {
	c := newCluster(t, triangle)
	s := &switchRec{c: c}
	j := start(t, c, req(c, "hot", "b1"), s)
	inThirdRound(t, c, j)
	if err := j.Abort(); err != nil {
		t.Fatal(err)
	}
	c.Engine().Run()
	if res := s.one(t); res.Err == nil || len(s.at) != 0 {
		t.Errorf("aborted: %+v, SwitchedOver at %v", res, s.at)
	}
	var _ hypervisor.SwitchoverObserver = s
}

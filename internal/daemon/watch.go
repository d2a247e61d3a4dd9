package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/world"
)

// idlePoll is how often Watch checks, once every source has ended,
// whether the evacuations are over.
const idlePoll = 50 * time.Millisecond

// Watch runs the worlds and the pipeline's sources (refuge watch) until
// ctx ends, or every source has ended and no evacuation runs or waits for
// approval. The worlds have stopped when it returns. It returns the
// sources' errors (pipeline.Run's).
func Watch(ctx context.Context, p *pipeline.Pipeline, worlds []world.World, sources []alertsource.Source) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, w := range worlds {
		wg.Go(func() { _ = w.Run(ctx) })
	}
	sourcesDone := make(chan error, 1)
	go func() { sourcesDone <- p.Run(ctx, sources...) }()
	select {
	case err := <-sourcesDone:
		if ctx.Err() == nil {
			// Every source ended: wait for the evacuations.
			waitIdle(ctx, worlds, p)
		}
		return err
	case <-ctx.Done():
		cancel()
		return <-sourcesDone
	}
}

// waitIdle waits until no evacuation runs and none waits for approval.
func waitIdle(ctx context.Context, worlds []world.World, p *pipeline.Pipeline) {
	tick := time.NewTicker(idlePoll)
	defer tick.Stop()
	for {
		idle := len(p.Pending()) == 0
		for _, w := range worlds {
			if d := w.Target().Done(); d != nil {
				select {
				case <-d:
				default:
					idle = false
				}
			}
		}
		if idle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

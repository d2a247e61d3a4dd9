// Package hypervisor defines the Driver interface through which refuge
// inventories and migrates domains. Its shape follows libvirt's API —
// virDomainMigrateToURI3 typed parameters and flags, virDomainGetJobStats,
// virDomainMigrateSetMaxSpeed, virDomainAbortJob and the job-completed
// event — so that a libvirt implementation is a thin mapping; the simulator
// implements the same interface on its virtual clock.
package hypervisor

import (
	"context"
	"errors"
	"time"

	"github.com/refuge-project/refuge/internal/precopy"
)

// DomainState mirrors virDomainState.
type DomainState string

// Domain states.
const (
	StateRunning  DomainState = "running"
	StatePaused   DomainState = "paused"
	StateShutoff  DomainState = "shutoff"
	StateCrashed  DomainState = "crashed"
	StateNoState  DomainState = "nostate"
	StateMigrated DomainState = "migrated" // gone from this host after a migration
)

// Domain describes one domain on one host, as virConnectListAllDomains plus
// virDomainGetInfo and domain stats report it.
type Domain struct {
	Name        string      `json:"name"`
	UUID        string      `json:"uuid,omitempty"`
	Host        string      `json:"host"`
	State       DomainState `json:"state"`
	VCPU        int         `json:"vcpu"`
	MemoryBytes uint64      `json:"memory_bytes"`
	// DiskBytes is the allocation of disks that are not on shared storage.
	LocalDiskBytes uint64 `json:"local_disk_bytes"`
	// DirtyRateBytes is the last measured memory dirty rate (bytes/s), from
	// calc-dirty-rate or the previous migration's job stats; 0 if unknown.
	DirtyRateBytes float64 `json:"dirty_rate_bytes"`
	Persistent     bool    `json:"persistent"`
}

// CopyStorage mirrors VIR_MIGRATE_NON_SHARED_DISK / _INC.
type CopyStorage string

// Storage copy modes.
const (
	CopyStorageNone CopyStorage = ""
	CopyStorageAll  CopyStorage = "all" // --copy-storage-all (NBD drive-mirror)
	CopyStorageInc  CopyStorage = "inc" // --copy-storage-inc (backing chain shared)
)

// MigrateParams are the migration's typed parameters and flags
// (VIR_MIGRATE_PARAM_* and VIR_MIGRATE_* in libvirt).
type MigrateParams struct {
	// Live keeps the guest running during pre-copy (VIR_MIGRATE_LIVE); false
	// pauses it for the whole transfer (a non-live, "cold" migration).
	Live bool
	// PeerToPeer lets the source daemon drive the migration (VIR_MIGRATE_PEER2PEER).
	PeerToPeer bool
	// PersistDest defines the domain on the destination (VIR_MIGRATE_PERSIST_DEST).
	PersistDest bool
	// UndefineSource removes the source definition (VIR_MIGRATE_UNDEFINE_SOURCE).
	UndefineSource bool
	// CopyStorage copies non-shared disks.
	CopyStorage CopyStorage
	// BandwidthBytes caps the transfer (VIR_MIGRATE_PARAM_BANDWIDTH, which
	// libvirt takes in MiB/s); 0 means the hypervisor default.
	BandwidthBytes float64
	// MaxDowntime is the allowed switch-over pause (virDomainMigrateSetMaxDowntime).
	MaxDowntime time.Duration
	// AutoConverge throttles vCPUs when pre-copy does not converge
	// (VIR_MIGRATE_AUTO_CONVERGE).
	AutoConverge bool
	// ParallelConnections > 1 enables multifd (VIR_MIGRATE_PARALLEL with
	// VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS).
	ParallelConnections int
	// PostCopy allows switching to post-copy (VIR_MIGRATE_POSTCOPY).
	PostCopy bool
}

// MigrateRequest asks to move Domain from SourceHost to DestHost.
type MigrateRequest struct {
	Domain     string
	SourceHost string
	DestHost   string
	// DestURI is the destination's connection URI (dconnuri); drivers that
	// know their hosts may leave it empty.
	DestURI string
	Params  MigrateParams
	// Route names the WAN links the migration's data should cross, in
	// order from the source's site to the destination's (model.Link
	// names); empty means the federation's default route. The simulator
	// follows it; the libvirt driver records it but cannot steer traffic
	// (the network's own routing applies).
	Route []string
}

// JobType mirrors virDomainJobType.
type JobType string

// Job types.
const (
	JobNone      JobType = "none"
	JobBounded   JobType = "bounded"
	JobUnbounded JobType = "unbounded"
	JobCompleted JobType = "completed"
	JobFailed    JobType = "failed"
	JobCancelled JobType = "cancelled"
)

// Phase names the stage a migration is in.
type Phase string

// Migration phases.
const (
	PhaseSetup      Phase = "setup"
	PhaseDisk       Phase = "disk"       // copying non-shared disks (NBD)
	PhasePrecopy    Phase = "precopy"    // iterative memory rounds
	PhaseSwitchover Phase = "switchover" // guest paused, final copy
	PhasePostcopy   Phase = "postcopy"   // guest runs at the destination, pulling the pages it lacks
	PhaseDone       Phase = "done"
)

// JobInfo mirrors the fields of virDomainGetJobStats that refuge uses
// (VIR_DOMAIN_JOB_* typed parameters).
type JobInfo struct {
	Type    JobType       `json:"type"`
	Phase   Phase         `json:"phase"`
	Elapsed time.Duration `json:"elapsed"`
	// Totals over memory and disk.
	DataTotal     uint64 `json:"data_total"`
	DataProcessed uint64 `json:"data_processed"`
	DataRemaining uint64 `json:"data_remaining"`
	// Memory.
	MemTotal       uint64  `json:"mem_total"`
	MemProcessed   uint64  `json:"mem_processed"`
	MemRemaining   uint64  `json:"mem_remaining"`
	MemDirtyRate   float64 `json:"mem_dirty_rate"` // bytes/s, as measured by the hypervisor
	MemIteration   int     `json:"mem_iteration"`
	MemBytesPerSec float64 `json:"mem_bps"`
	// MemRoundElapsed is how long the current memory round has been
	// sending (the simulator knows it exactly; the libvirt driver measures
	// it from the iteration changes its poller sees); 0 when unknown.
	MemRoundElapsed time.Duration `json:"mem_round_elapsed"`
	// Disk (copy-storage).
	DiskTotal     uint64 `json:"disk_total"`
	DiskProcessed uint64 `json:"disk_processed"`
	DiskRemaining uint64 `json:"disk_remaining"`
	// DiskBytesPerSec is the disk copy rate (VIR_DOMAIN_JOB_DISK_BPS).
	DiskBytesPerSec float64 `json:"disk_bps"`
	// Downtime is the actual (completed) or expected switch-over pause.
	Downtime time.Duration `json:"downtime"`
	// AutoConvergeThrottle is the vCPU throttle in percent.
	AutoConvergeThrottle int `json:"auto_converge_throttle"`
	// Paused is true when the guest stays paused until the switch-over
	// ends: a non-live migration, or a live one switched to pause-and-copy
	// by Job.Pause.
	Paused bool `json:"paused"`
	// PostCopy is true once the migration has switched to post-copy
	// (Job.StartPostCopy): the guest runs at the destination and the
	// domain is lost if the source or the path fails before the end.
	PostCopy bool `json:"post_copy"`
}

// BytesPerSec is the job's current transfer rate, memory and disk together.
func (j JobInfo) BytesPerSec() float64 { return j.MemBytesPerSec + j.DiskBytesPerSec }

// Progress returns the statistics of a live migration in its memory
// rounds as precopy.Predict takes them. workingSet is the guest's (0: all
// its memory) and cfg the migration's downtime limit and auto-converge.
func (j JobInfo) Progress(workingSet float64, cfg precopy.Config) precopy.Progress {
	return precopy.Progress{
		MemoryBytes:  float64(j.MemTotal),
		WorkingSet:   workingSet,
		Remaining:    float64(j.MemRemaining),
		RoundElapsed: j.MemRoundElapsed,
		Rounds:       max(j.MemIteration-1, 0),
		DirtyRate:    j.MemDirtyRate,
		Throttle:     float64(j.AutoConvergeThrottle) / 100,
		Rate:         j.MemBytesPerSec,
		Config:       cfg,
	}
}

// Result is how a migration ended.
type Result struct {
	Domain   string        `json:"domain"`
	Source   string        `json:"source"`
	Dest     string        `json:"dest"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Downtime time.Duration `json:"downtime"`
	Bytes    uint64        `json:"bytes"`
	// Rounds is the number of pre-copy iterations.
	Rounds int `json:"rounds"`
	// Err is nil on success; otherwise the domain is running on exactly one
	// of Source or Dest, as RunningOn says.
	Err       error  `json:"-"`
	RunningOn string `json:"running_on"`
}

// Observer receives a migration's outcome. Calls come from the driver's
// goroutine (real drivers) or from the event loop (the simulator); an
// observer must not block.
type Observer interface {
	MigrationDone(r Result)
}

// SwitchoverObserver is an Observer that also wants the moment the
// domain starts running at the destination, while the source's copy still
// exists: the step at which a service's name and routes should follow the
// VM (package continuity). A driver that knows that moment calls
// SwitchedOver at most once per migration, before MigrationDone, from its
// own goroutine; it must not block for long. libvirt: the destination's
// VIR_DOMAIN_EVENT_RESUMED_MIGRATED (or _POSTCOPY) lifecycle event, sent in
// the Finish phase, before the source's Confirm phase tears its copy down.
// The simulator: the end of the switch-over pause. A migration that still
// fails afterwards (the domain back on the source) says so in
// MigrationDone; drivers that never call SwitchedOver leave the caller to
// treat a successful MigrationDone as the switch-over.
type SwitchoverObserver interface {
	Observer
	SwitchedOver()
}

// Job is a running migration.
type Job interface {
	// Info returns current job statistics (virDomainGetJobStats).
	Info() (JobInfo, error)
	// SetMaxSpeed changes the bandwidth cap in bytes/s while the job runs
	// (virDomainMigrateSetMaxSpeed).
	SetMaxSpeed(bytesPerSec float64) error
	// Abort cancels the job (virDomainAbortJob); the domain keeps running
	// on the source and MigrationDone reports ErrAborted. A migration in
	// post-copy cannot be aborted (ErrNotAllowed).
	Abort() error
	// Pause switches a live migration that cannot converge in time to
	// pause-and-copy: the guest is paused on the source now (virDomainSuspend)
	// and stops dirtying memory, what is still dirty is sent, and the
	// domain resumes at the destination. Downtime counts from the pause.
	// It does nothing for a non-live migration or one already paused, and
	// returns ErrNotAllowed in post-copy.
	Pause() error
	// StartPostCopy switches a live migration to post-copy
	// (virDomainMigrateStartPostCopy): the guest runs at the destination
	// from now (downtime: the switch-over only) and pulls the pages it
	// still lacks. Until they have arrived the domain depends on both
	// hosts and the path: losing any of them loses it. Asked for before
	// memory moves, the whole memory is pulled. It returns ErrNotAllowed
	// unless the migration was started live with Params.PostCopy, and
	// after Pause or during the final switch-over; a second call does
	// nothing.
	StartPostCopy() error
}

// Driver inventories hosts and migrates domains.
type Driver interface {
	// ListDomains lists the domains defined on host.
	ListDomains(ctx context.Context, host string) ([]Domain, error)
	// Migrate starts a migration and returns at once; obs.MigrationDone is
	// called exactly once when it ends, never before Migrate returns.
	Migrate(ctx context.Context, req MigrateRequest, obs Observer) (Job, error)
}

// Errors a driver reports; wrap them with context.
var (
	ErrAborted          = errors.New("migration aborted")
	ErrHostUnreachable  = errors.New("host unreachable")
	ErrHostDown         = errors.New("host is down")
	ErrNoSuchDomain     = errors.New("no such domain")
	ErrNotConverging    = errors.New("migration does not converge")
	ErrDestinationFull  = errors.New("destination lacks resources")
	ErrLinkDown         = errors.New("network path down")
	ErrDomainLost       = errors.New("domain lost")
	ErrJobAlreadyActive = errors.New("domain already has an active job")
	// ErrBadRequest: the request names something the federation does not
	// have or is inconsistent (e.g. a route that does not join the hosts).
	ErrBadRequest = errors.New("invalid migration request")
	// ErrNotAllowed: the job cannot do that in its mode or state (e.g.
	// post-copy without Params.PostCopy).
	ErrNotAllowed = errors.New("operation not allowed for this migration")
)

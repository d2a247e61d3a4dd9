// Package model defines refuge's federation model (sites, fabrics, hosts,
// links, VMs and services), the scenario model (timed events and per-site
// deadlines) and the operator policy, loads them from YAML strictly and
// validates them, naming every field at fault.
//
// ParseFederation, ParseScenario and ParsePolicy (and their Load
// variants) decode a document, fill in defaults and validate it, reporting
// every problem at once as a validate.List with field paths such as
// "sites[1].fabrics[0].hosts[3].memory_mib". The Validate methods check
// values built in code the same way. Schema returns the JSON Schema of each
// document for editors; Index gives integer-indexed access and routes over
// a validated federation. docs/federation.md describes every field.
package model

// Federation is the whole logical cloud: sites joined by WAN links, the VMs
// they run and the services those VMs make up.
type Federation struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	PowerModels []PowerModel `json:"power_models,omitempty"`
	Sites       []Site       `json:"sites"`
	Links       []Link       `json:"links,omitempty"`
	Services    []Service    `json:"services,omitempty"`
	VMs         []VM         `json:"vms"`
}

// PowerModel gives a host type's power draw in watts at 0, 10, …, 100 % CPU
// utilisation; draw in between is interpolated linearly.
type PowerModel struct {
	Name  string    `json:"name"`
	Watts []float64 `json:"watts"`
}

// DefaultPowerModelName names the built-in power model (IBM x3250 M3, Xeon
// X3470, from SPECpower as used by seed 004).
const DefaultPowerModelName = "ibm-x3250-x3470"

// DefaultPowerModel is used by hosts that name no power model.
var DefaultPowerModel = PowerModel{
	Name:  DefaultPowerModelName,
	Watts: []float64{41.6, 46.7, 52.3, 57.9, 65.4, 73, 80.7, 89.5, 99.6, 105, 113},
}

// Site is one location (a university or institute data centre).
type Site struct {
	Name string  `json:"name"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
	// TsunamiArea is the JMA tsunami forecast area code of the site's coast
	// (empty for inland sites).
	TsunamiArea string `json:"tsunami_area,omitempty"`
	// SeismicArea is the JMA seismic intensity area (地震情報／細分区域)
	// the site lies in, by code ("631" 高知県中部; see JMASeismicAreaName):
	// intensities an alert forecasts or reports for that area apply to the
	// site. Empty outside Japan or when unknown.
	SeismicArea string `json:"seismic_area,omitempty"`
	// UPSMinutes and GeneratorMinutes say how long the site keeps running
	// after mains power is lost.
	UPSMinutes       float64 `json:"ups_minutes,omitempty"`
	GeneratorMinutes float64 `json:"generator_minutes,omitempty"`
	// Gateway lists the public IP addresses of the site's gateway (package
	// continuity): the DNS answer for a service while its VMs run here.
	// Empty: the site has no gateway, and a service's name points at its
	// VM's own address there.
	Gateway []string `json:"gateway,omitempty"`
	Fabrics []Fabric `json:"fabrics"`
}

// Fabric is one private-cloud cluster inside a site: hosts behind one
// non-blocking switch.
type Fabric struct {
	Name  string `json:"name"`
	Hosts []Host `json:"hosts"`
}

// Host is one hypervisor.
type Host struct {
	Name      string  `json:"name"`
	VCPU      int     `json:"vcpu"`
	MemoryMiB int64   `json:"memory_mib"`
	DiskGiB   int64   `json:"disk_gib,omitempty"`
	NICMbps   float64 `json:"nic_mbps"`
	// PowerModel names an entry of Federation.PowerModels; empty means the
	// default model.
	PowerModel string `json:"power_model,omitempty"`
	// URI is the libvirt connection URI of the host (used by the libvirt driver).
	URI string `json:"uri,omitempty"`
}

// LinkMode says whether a WAN link carries only refuge's traffic.
type LinkMode string

// Link modes.
const (
	LinkDedicated LinkMode = "dedicated"
	LinkShared    LinkMode = "shared"
)

// Link joins two sites; it is full duplex with BandwidthMbps each way.
type Link struct {
	Name          string   `json:"name"`
	A             string   `json:"a"`
	B             string   `json:"b"`
	BandwidthMbps float64  `json:"bandwidth_mbps"`
	RTTMs         float64  `json:"rtt_ms"`
	Mode          LinkMode `json:"mode,omitempty"`
	// BackgroundMbps is the other traffic a shared link typically carries;
	// migrations get the rest.
	BackgroundMbps float64 `json:"background_mbps,omitempty"`
	// TunnelOverheadBytes is the per-packet encapsulation overhead of the
	// VPN that carries the link (e.g. EtherIP inside IPsec ESP).
	TunnelOverheadBytes int `json:"tunnel_overhead_bytes,omitempty"`
}

// StorageMode says where a VM's disks live.
type StorageMode string

// Storage modes.
const (
	// StorageShared disks live on storage reachable from every site (a
	// distributed store such as Sheepdog or Ceph spanning the federation);
	// only memory moves.
	StorageShared StorageMode = "shared"
	// StorageLocal disks live on the host; migration copies them too.
	StorageLocal StorageMode = "local"
)

// VM is one virtual machine and where it runs now.
type VM struct {
	Name      string      `json:"name"`
	Host      string      `json:"host"`
	VCPU      int         `json:"vcpu"`
	MemoryMiB int64       `json:"memory_mib"`
	DiskGiB   int64       `json:"disk_gib,omitempty"`
	Storage   StorageMode `json:"storage,omitempty"`
	// DirtyRateMiBps is the typical rate at which the guest dirties memory.
	DirtyRateMiBps float64 `json:"dirty_rate_mibps,omitempty"`
	// WorkingSetMiB bounds how much distinct memory the guest dirties during
	// one pre-copy round (its writable working set); 0 means the whole memory.
	WorkingSetMiB float64 `json:"working_set_mib,omitempty"`
	// Priority: higher is more important (0–1000).
	Priority     int    `json:"priority,omitempty"`
	Service      string `json:"service,omitempty"`
	FQDN         string `json:"fqdn,omitempty"`
	AntiAffinity string `json:"anti_affinity,omitempty"`
}

// Service is a set of VMs that together provide something users reach
// (e.g. Moodle), with the services it needs (e.g. web → app → db).
type Service struct {
	Name      string   `json:"name"`
	DependsOn []string `json:"depends_on,omitempty"`
	// FQDN is the public DNS name users reach the service under; its
	// A/AAAA records follow the service's VMs from site to site (package
	// continuity). Empty: the name is not managed.
	FQDN string `json:"fqdn,omitempty"`
	// Port is the TCP port the service answers on (1–65535; 0: not set),
	// the default port of its backends in a continuity configuration.
	Port int `json:"port,omitempty"`
}

// MemoryBytes returns the VM's memory size in bytes.
func (v *VM) MemoryBytes() float64 { return float64(v.MemoryMiB) * MiB }

// DiskBytes returns the VM's disk size in bytes.
func (v *VM) DiskBytes() float64 { return float64(v.DiskGiB) * GiB }

// CopiesDisk reports whether migrating the VM also copies its disks.
func (v *VM) CopiesDisk() bool { return v.Storage == StorageLocal }

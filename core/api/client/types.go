package client

import "time"

// The native API's wire types. Field names are the API; the server
// encodes with these types, so client and server cannot drift.

// Instance is one instance as the native API shows it: everything Nova's
// body has no words for (the transition with its steps, flags, the full
// fault, the flavor as built).
type Instance struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	VMState    string            `json:"vm_state"`
	PowerState string            `json:"power_state"`
	TaskState  string            `json:"task_state,omitempty"`
	Flavor     Flavor            `json:"flavor"`
	OldFlavor  *Flavor           `json:"old_flavor,omitempty"`
	Image      Image             `json:"image"`
	Node       string            `json:"node"`
	Driver     string            `json:"driver"`
	Project    string            `json:"project,omitempty"`
	User       string            `json:"user,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Fault      *Fault            `json:"fault,omitempty"`
	Flags      []Flag            `json:"flags,omitempty"`
	Transition *Transition       `json:"transition"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	// Unreadable is set when the stored record could not be decoded; the
	// instance then shows ERROR and little else.
	Unreadable string `json:"unreadable,omitempty"`
}

// InstanceList is one page of GET /v1/instances. Next, when set, is the
// URL of the next page; it is empty on the last one.
type InstanceList struct {
	Instances []Instance `json:"instances"`
	Next      string     `json:"next,omitempty"`
}

// Transition is an action in flight.
type Transition struct {
	Action        string    `json:"action"`
	RequestID     string    `json:"request_id"`
	Steps         []string  `json:"steps"`
	Step          int       `json:"step"`
	Current       string    `json:"current,omitempty"`
	Origin        string    `json:"origin"`
	Target        string    `json:"target"`
	StartedAt     time.Time `json:"started_at"`
	StepStartedAt time.Time `json:"step_started_at"`
	Attempt       int       `json:"attempt"`
	Node          string    `json:"node"`
	Flavor        *Flavor   `json:"flavor,omitempty"`
	Image         *Image    `json:"image,omitempty"`
	Name          string    `json:"name,omitempty"`
}

// Fault says why an instance is in ERROR or why its last action failed.
type Fault struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	During  string    `json:"during,omitempty"`
}

// Flag is a mismatch the reconciler noticed and did not correct.
type Flag struct {
	Kind     string    `json:"kind"`
	Message  string    `json:"message"`
	Since    time.Time `json:"since"`
	Recorded string    `json:"recorded,omitempty"`
	Observed string    `json:"observed,omitempty"`
}

// Flavor is a flavor, from the catalog or as an instance was built.
type Flavor struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	VCPUs  int    `json:"vcpus"`
	RAMMB  int    `json:"ram_mb"`
	DiskGB int    `json:"disk_gb"`
}

// Image is an image, from the catalog or as an instance was built.
type Image struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Source     string `json:"source,omitempty"`
	DiskFormat string `json:"disk_format,omitempty"`
	MinRAMMB   int    `json:"min_ram_mb,omitempty"`
	MinDiskGB  int    `json:"min_disk_gb,omitempty"`
}

// HistoryRecord is one status change.
type HistoryRecord struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Action    string    `json:"action"`
	Cause     string    `json:"cause"`
	RequestID string    `json:"request_id"`
	User      string    `json:"user,omitempty"`
	Message   string    `json:"message,omitempty"`
	Policy    string    `json:"policy,omitempty"`
}

// Flags is what GET /v1/flags answers: the flagged instances and the VMs
// no record names.
type Flags struct {
	Instances []Instance    `json:"instances"`
	Unmanaged []UnmanagedVM `json:"unmanaged"`
}

// UnmanagedVM is a VM a node's driver reports that no record names.
type UnmanagedVM struct {
	Node   string    `json:"node"`
	Driver string    `json:"driver"`
	ID     string    `json:"id"`
	Power  string    `json:"power"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

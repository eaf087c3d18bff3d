package throughput

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Machine is how the whole machine's CPU time was spent over the path's slices,
// from /proc/stat: it says whether the path was bound by the CPU (little
// idle) or by waiting (fsyncs, hand-offs between processes), which the
// per-process figures cannot tell. Shares of all CPUs' time; zero when
// /proc/stat cannot be read.
type Machine struct {
	CPUs    int     `json:"cpus"`
	User    float64 `json:"user"`   // user and nice
	System  float64 `json:"system"` // kernel on behalf of processes
	IRQ     float64 `json:"irq"`    // interrupts and softirqs: the disk's and the sockets' completions, charged to no process
	Idle    float64 `json:"idle"`
	IOWait  float64 `json:"iowait"` // idle with I/O outstanding
	Stolen  float64 `json:"steal"`  // taken by the hypervisor for other guests
	Samples uint64  `json:"ticks"`  // clock ticks the shares are of
}

// cpuTicks is /proc/stat's aggregate "cpu" line: user, nice, system,
// idle, iowait, irq, softirq, steal (guest time is inside user).
type cpuTicks [8]uint64

// readCPUTicks reads the aggregate line and the number of CPUs.
func readCPUTicks() (cpuTicks, int, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, 0, err
	}
	return parseCPUTicks(string(b))
}

func parseCPUTicks(stat string) (cpuTicks, int, error) {
	var t cpuTicks
	found, cpus := false, 0
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "cpu":
			if len(f) < 9 {
				return t, 0, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 9", len(f))
			}
			for i := range t {
				v, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					return t, 0, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
				}
				t[i] = v
			}
			found = true
		case strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	if !found {
		return t, 0, fmt.Errorf("/proc/stat: no aggregate cpu line")
	}
	return t, cpus, nil
}

// since is the ticks counted from a to b. A counter that went backwards
// (the kernel's iowait can) counts nothing.
func (b cpuTicks) since(a cpuTicks) cpuTicks {
	var d cpuTicks
	for i := range d {
		if b[i] > a[i] {
			d[i] = b[i] - a[i]
		}
	}
	return d
}

// add adds o's ticks to t's.
func (t *cpuTicks) add(o cpuTicks) {
	for i := range t {
		t[i] += o[i]
	}
}

// machineBetween is the split of the ticks counted from a to b.
func machineBetween(a, b cpuTicks, cpus int) Machine {
	d := b.since(a)
	var total uint64
	for _, v := range d {
		total += v
	}
	if total == 0 {
		return Machine{}
	}
	share := func(v uint64) float64 { return float64(v) / float64(total) }
	return Machine{
		CPUs: cpus, User: share(d[0] + d[1]), System: share(d[2]), Idle: share(d[3]), IOWait: share(d[4]),
		IRQ: share(d[5] + d[6]), Stolen: share(d[7]), Samples: total,
	}
}

// Busy is the share of the machine's CPU time spent working.
func (m Machine) Busy() float64 { return m.User + m.System + m.IRQ }

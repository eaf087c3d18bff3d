package throughput

import (
	"math"
	"strings"
	"testing"
)

func TestParseCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stat  string
		ticks cpuTicks
		cpus  int
		err   string
	}{
		{
			name: "two CPUs",
			stat: "cpu  642354 10 195353 2898355 45225 0 23908 7 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\nctxt 99\n",
			// user nice system idle iowait irq softirq steal
			ticks: cpuTicks{642354, 10, 195353, 2898355, 45225, 0, 23908, 7},
			cpus:  2,
		},
		{name: "no aggregate line", stat: "cpu0 1 2 3 4 5 6 7 8\n", err: "no aggregate cpu line"},
		{name: "old kernel without steal", stat: "cpu 1 2 3 4 5 6 7\n", err: "at least 9"},
		{name: "not a number", stat: "cpu 1 2 x 4 5 6 7 8\n", err: "cpu field 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ticks, cpus, err := parseCPUTicks(tc.stat)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ticks != tc.ticks || cpus != tc.cpus {
				t.Fatalf("got %v, %d CPUs; want %v, %d", ticks, cpus, tc.ticks, tc.cpus)
			}
		})
	}
}

func TestMachineBetween(t *testing.T) {
	a := cpuTicks{1000, 0, 500, 9000, 100, 0, 50, 0}
	// Over the window: 470 user + 10 nice, 160 system, 90 idle, 45
	// iowait, 25 softirq, 0 steal: 800 ticks of two CPUs over 4s.
	b := cpuTicks{1470, 10, 660, 9090, 145, 0, 75, 0}
	m := machineBetween(a, b, 2)
	want := Machine{CPUs: 2, User: 480.0 / 800, System: 160.0 / 800, Idle: 90.0 / 800, IOWait: 45.0 / 800, IRQ: 25.0 / 800, Samples: 800}
	if m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	if got := m.Busy() + m.Idle + m.IOWait + m.Stolen; math.Abs(got-1) > 1e-9 {
		t.Fatalf("shares sum to %v, want 1", got)
	}
	// A counter that went backwards (a CPU taken offline) counts nothing
	// rather than wrapping around.
	b[3] = 8000
	if m := machineBetween(a, b, 2); m.Idle != 0 || m.Samples != 710 {
		t.Fatalf("a counter going backwards: got %+v", m)
	}
	if m := machineBetween(a, a, 2); m != (Machine{}) {
		t.Fatalf("no ticks: got %+v, want the zero Machine", m)
	}
}

// The path's slices sum their ticks; a counter that went backwards in
// one slice adds nothing for it, rather than wrapping the sum around.
func TestTicksSummedOverSlices(t *testing.T) {
	var sum cpuTicks
	a := cpuTicks{1000, 0, 500, 9000, 100, 0, 50, 0}
	b := cpuTicks{1100, 0, 550, 9050, 90, 0, 60, 0} // iowait went back by 10
	sum.add(b.since(a))
	c := cpuTicks{1200, 0, 600, 9100, 120, 0, 70, 0}
	sum.add(c.since(b))
	want := cpuTicks{200, 0, 100, 100, 30, 0, 20, 0}
	if sum != want {
		t.Fatalf("summed ticks %v, want %v", sum, want)
	}
	if m := machineBetween(cpuTicks{}, sum, 2); m.Samples != 450 || m.IOWait != 30.0/450 {
		t.Fatalf("machine over the slices %+v", m)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lucid-project/lucid/sdk/driver"
)

func stateConfig(path string) string { return `{"state_file": "` + path + `"}` }

func lines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

// TestJournalReplay: every kind of change survives a restart, exactly.
func TestJournalReplay(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fake.journal")
	first := configured(t, stateConfig(path))
	for _, id := range []string{"a", "b", "c"} {
		if err := first.Spawn(ctx, driver.Spec{ID: id, Name: "vm-" + id, Flavor: small, Image: cirros}); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(first.PowerOff(ctx, "a"))
	must(first.Rebuild(ctx, "a", debian))
	for _, st := range resizeSteps {
		must(first.Resize(ctx, "b", st, large))
	}
	must(first.Destroy(ctx, "c"))
	must(first.add("u", driver.PowerPaused))
	want := first.snapshot()
	if got := lines(t, path); got != 3+1+1+3+1+1 {
		t.Errorf("journal has %d lines, want one per change (10)", got)
	}

	second := configured(t, stateConfig(path)) // a restarted plugin process
	if got := second.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after replay:\n got %+v\nwant %+v", got, want)
	}
}

// TestJournalTornTail: a process that died mid-write leaves a line
// without its newline; replay ignores it and cuts it off, so the next
// append starts on a line of its own.
func TestJournalTornTail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fake.journal")
	first := configured(t, stateConfig(path))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(first.Spawn(ctx, driver.Spec{ID: "a"}))
	must(first.PowerOff(ctx, "a"))
	must(first.Close())
	data, err := os.ReadFile(path)
	must(err)
	torn := append(data, []byte(`{"put":{"id":"b","pow`)...)
	must(os.WriteFile(path, torn, 0o644))

	second := configured(t, stateConfig(path))
	want := []instance{{ID: "a", Power: driver.PowerShutdown}}
	if got := second.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a torn write: %+v, want %+v", got, want)
	}
	must(second.Spawn(ctx, driver.Spec{ID: "c"}))
	third := configured(t, stateConfig(path))
	want = append(want, instance{ID: "c", Power: driver.PowerRunning})
	if got := third.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("appending after a torn write: %+v, want %+v", got, want)
	}
}

func TestJournalErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, wantErr string
	}{
		{"corrupt line", "{\"put\":{\"id\":\"a\",\"power\":\"running\"}}\nnot json\n{\"del\":\"a\"}\n", "bad.journal:2: invalid character"},
		{"empty record", "{}\n", "bad.journal:1: a record needs \"put\" with an id or \"del\""},
		{"bad legacy file", "[{\"id\": 5}]", "bad.journal: json: cannot unmarshal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.journal")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := newFake(io.Discard).Configure(context.Background(), []byte(stateConfig(path)))
			if !errors.Is(err, driver.ErrInvalidConfig) || !strings.Contains(err.Error(), "state_file: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Configure err = %v, want ErrInvalidConfig naming state_file and containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestJournalReadsTheOldFormat: a state file written whole, as an array,
// by the previous release is read and converted to a journal.
func TestJournalReadsTheOldFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fake.json")
	old := `[
  {"id": "a", "name": "web", "flavor": "m1.small", "image": "cirros", "power": "shutdown"},
  {"id": "b", "power": "running"}
]
`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	f := configured(t, stateConfig(path))
	want := []instance{
		{ID: "a", Name: "web", Flavor: flavor{Name: "m1.small"}, Image: image{ID: "cirros"}, Power: driver.PowerShutdown},
		{ID: "b", Power: driver.PowerRunning},
	}
	if got := f.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("from the old format: %+v, want %+v", got, want)
	}
	if err := f.PowerOn(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	want[0].Power = driver.PowerRunning
	if got := configured(t, stateConfig(path)).snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after conversion and a change: %+v, want %+v", got, want)
	}
}

// TestJournalCompacts: changes to few instances do not grow the file
// without bound; the compacted file replays to the same state.
func TestJournalCompacts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fake.journal")
	f := configured(t, stateConfig(path))
	if err := f.Spawn(ctx, driver.Spec{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 * compactSlack {
		var err error
		if i%2 == 0 {
			err = f.PowerOff(ctx, "a")
		} else {
			err = f.PowerOn(ctx, "a")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, bound := lines(t, path), 2*1+compactSlack; got > bound {
		t.Errorf("journal has %d lines for 1 instance, want at most %d", got, bound)
	}
	want := f.snapshot()
	if got := configured(t, stateConfig(path)).snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after compaction: %+v, want %+v", got, want)
	}
}

// TestTenThousand: the reconciler's benchmark spawns 10,000 instances and
// lists them; with a state file that must replay to the same list.
func TestTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 instances")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fake.journal")
	f := configured(t, stateConfig(path))
	const n = 10000
	for i := range n {
		if err := f.Spawn(ctx, driver.Spec{ID: fmt.Sprintf("vm-%05d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := f.List(ctx)
	if err != nil || len(list) != n || list[0].ID != "vm-00000" || list[n-1].ID != fmt.Sprintf("vm-%05d", n-1) {
		t.Fatalf("List: %d instances, %v; want %d sorted", len(list), err, n)
	}
	again, err := configured(t, stateConfig(path)).List(ctx)
	if err != nil || !reflect.DeepEqual(again, list) {
		t.Fatalf("List after replay: %d instances, %v; want the same %d", len(again), err, n)
	}
}

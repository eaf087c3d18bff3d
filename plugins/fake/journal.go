package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lucid-project/lucid/sdk/driver"
)

// journal is the state file: one JSON record per line, each a change
// ({"put": instance} or {"del": id}), appended as it happens and replayed
// at Configure. Appending one line costs one write, so a change stays cheap
// with 10,000 instances (rewriting the whole state did not). When the file
// holds more than twice as many records as there are instances (plus
// compactSlack), it is rewritten as a snapshot, one put per instance,
// through a temporary file and a rename.
//
// Crash safety is against the process dying, not the machine: each record
// goes out in one write(2), and a torn last line (no newline) is ignored on
// replay and cut off by rewriting the file. There is no fsync: an OS
// crash may lose the latest changes, which a simulated hypervisor can
// afford. A complete line that does not decode is corruption, reported
// with its line number.
//
// A state file in the previous format (one JSON array, rewritten whole) is
// read and converted.
type journal struct {
	path    string
	f       *os.File // opened for appending
	records int      // lines in the file
}

// compactSlack keeps small journals from being rewritten all the time.
const compactSlack = 1024

// record is one line of the journal; exactly one field is set.
type record struct {
	Put *instance `json:"put,omitempty"`
	Del string    `json:"del,omitempty"`
}

// openJournal replays path (a missing file is an empty state) and opens it
// for appending.
func openJournal(path string) (*journal, map[string]*instance, error) {
	j := &journal{path: path}
	all, clean, err := j.replay()
	if err != nil {
		return nil, nil, err
	}
	if !clean {
		if err := j.rewrite(all); err != nil {
			return nil, nil, err
		}
	}
	if j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
		return nil, nil, err
	}
	return j, all, nil
}

// replay reads the file. clean is false when the file must be rewritten
// before appending: a torn last line, or the old format.
func (j *journal) replay() (all map[string]*instance, clean bool, err error) {
	all = make(map[string]*instance)
	data, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return all, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		all, err := readLegacy(j.path, trimmed)
		return all, false, err
	}
	r := bufio.NewReader(bytes.NewReader(data))
	clean = true
	for line := 1; ; line++ {
		text, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(text) > 0 {
				clean = false // torn: the process died mid-write
			}
			break
		}
		j.records++
		var rec record
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, false, fmt.Errorf("%s:%d: %v", j.path, line, err)
		}
		switch {
		case rec.Put != nil && rec.Put.ID != "":
			all[rec.Put.ID] = rec.Put
		case rec.Del != "":
			delete(all, rec.Del)
		default:
			return nil, false, fmt.Errorf("%s:%d: a record needs \"put\" with an id or \"del\"", j.path, line)
		}
	}
	return all, clean, nil
}

// readLegacy reads the previous format: [{"id","name","flavor","image","power"}].
func readLegacy(path string, data []byte) (map[string]*instance, error) {
	var list []struct {
		ID     string            `json:"id"`
		Name   string            `json:"name"`
		Flavor string            `json:"flavor"`
		Image  string            `json:"image"`
		Power  driver.PowerState `json:"power"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	all := make(map[string]*instance, len(list))
	for _, in := range list {
		all[in.ID] = &instance{ID: in.ID, Name: in.Name, Flavor: flavor{Name: in.Flavor}, Image: image{ID: in.Image}, Power: in.Power}
	}
	return all, nil
}

func (j *journal) put(in *instance) error { return j.append(record{Put: in}) }
func (j *journal) del(id string) error    { return j.append(record{Del: id}) }

// append writes one record as one line in one write.
func (j *journal) append(rec record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return err
	}
	j.records++
	return nil
}

// compactIfLong rewrites the journal as a snapshot of all when it has
// grown past its bound.
func (j *journal) compactIfLong(all map[string]*instance) error {
	if j.records <= 2*len(all)+compactSlack {
		return nil
	}
	if err := j.rewrite(all); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	j.f.Close()
	j.f = f
	return nil
}

// rewrite replaces the file with one put per instance, by ID, atomically
// (a temporary file renamed over it).
func (j *journal) rewrite(all map[string]*instance) error {
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, strings.Compare)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode ends each record with a newline
	for _, id := range ids {
		if err := enc.Encode(record{Put: all[id]}); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return err
	}
	j.records = len(ids)
	return nil
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}

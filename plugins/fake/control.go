package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"

	"github.com/lucid-project/lucid/sdk/driver"
)

// The control API changes VMs behind Lucid's back, as an operator at the
// hypervisor's console would, so the reconciler can be tested and shown.
// It is plain HTTP with JSON bodies on the unix socket control_socket
// names; `lucid-driver-fake ctl` is its client:
//
//	GET    /vms               every VM, with flavor, image and resize state
//	POST   /vms               {"id": "...", "power": "running"}  add an unmanaged VM
//	PUT    /vms/{id}/power    {"power": "crashed"}                set the power state
//	DELETE /vms/{id}                                              forget the VM
//	GET    /env               the plugin process's environment, sorted NAME=VALUE strings
//
// Each change is journaled like any other and sent to Events subscribers
// (EventAppeared, EventPower, EventVanished). Errors are
// {"error": "..."} with 400 (bad request), 404 (unknown VM) or 409 (the
// VM exists already).

// controlPowers are the power states the control API sets.
var controlPowers = []driver.PowerState{driver.PowerRunning, driver.PowerShutdown, driver.PowerCrashed, driver.PowerPaused}

// control is the control API's server.
type control struct {
	srv  *http.Server
	done chan error
}

// startControl listens on path. A socket left there by a previous process
// is replaced; any other file is refused.
func startControl(path string, f *fake) (*control, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /vms", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, f.snapshot())
	})
	mux.HandleFunc("POST /vms", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID    string            `json:"id"`
			Power driver.PowerState `json:"power"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Power == "" {
			body.Power = driver.PowerRunning
		}
		answer(w, http.StatusCreated, f.add(body.ID, body.Power))
	})
	mux.HandleFunc("PUT /vms/{id}/power", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Power driver.PowerState `json:"power"`
		}
		if !decode(w, r, &body) {
			return
		}
		answer(w, http.StatusOK, f.setPower(r.PathValue("id"), body.Power))
	})
	mux.HandleFunc("DELETE /vms/{id}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, f.vanish(r.PathValue("id")))
	})
	// What the host gave the plugin: shows (and tests check) that a
	// plugin gets its driver block's env and pass_env and none of the
	// host's other variables.
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) {
		env := os.Environ()
		slices.Sort(env)
		reply(w, http.StatusOK, env)
	})
	c := &control{srv: &http.Server{Handler: mux}, done: make(chan error, 1)}
	go func() { c.done <- c.srv.Serve(ln) }()
	return c, nil
}

// close stops the server and waits for it; the socket file is removed.
func (c *control) close() error {
	err := c.srv.Close()
	if serveErr := <-c.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// errExists marks an add of an ID in use (409).
var errExists = errors.New("exists already")

// badRequest is a control request the fake cannot carry out as asked (400).
type badRequest string

func (e badRequest) Error() string { return string(e) }

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	return true
}

func answer(w http.ResponseWriter, okCode int, err error) {
	switch {
	case err == nil:
		w.WriteHeader(okCode)
	case errors.Is(err, driver.ErrNotFound):
		reply(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, errExists):
		reply(w, http.StatusConflict, map[string]string{"error": err.Error()})
	case errors.As(err, new(badRequest)):
		reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	default:
		reply(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func checkPower(p driver.PowerState) error {
	if !slices.Contains(controlPowers, p) {
		return badRequest(fmt.Sprintf("power %q, want one of running, shutdown, crashed, paused", p))
	}
	return nil
}

// snapshot returns every instance by ID, copied.
func (f *fake) snapshot() []instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]instance, 0, len(f.instances))
	for _, in := range f.sortedLocked() {
		out = append(out, *in.clone())
	}
	return out
}

// setPower is the control API's power change (EventPower).
func (f *fake) setPower(id string, p driver.PowerState) error {
	if err := checkPower(p); err != nil {
		return err
	}
	return f.update(id, func(in *instance) error { in.Power = p; return nil })
}

// add creates an unmanaged VM (EventAppeared).
func (f *fake) add(id string, p driver.PowerState) error {
	if id == "" {
		return badRequest("empty id")
	}
	if err := checkPower(p); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[id]; ok {
		return fmt.Errorf("fake: instance %s: %w", id, errExists)
	}
	if err := f.putLocked(&instance{ID: id, Power: p, Unmanaged: true}); err != nil {
		return err
	}
	f.emitLocked(driver.Event{Kind: driver.EventAppeared, ID: id, Power: p})
	return nil
}

// vanish forgets a VM (EventVanished).
func (f *fake) vanish(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.instances[id]; !ok {
		return notFound(id)
	}
	if err := f.deleteLocked(id); err != nil {
		return err
	}
	f.emitLocked(driver.Event{Kind: driver.EventVanished, ID: id, Power: driver.PowerNoState})
	return nil
}

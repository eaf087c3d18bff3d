package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// ctlUsage is printed for -h and for a bad command line.
const ctlUsage = `usage: lucid-driver-fake ctl --socket PATH COMMAND [ARGS]

Changes the fake's VMs behind Lucid's back, through the control API that
the driver config's control_socket enables.

commands:
  list                    print every VM: id, power, flavor, image, notes
  power ID STATE          set a VM's power: running, shutdown, crashed or paused
  vanish ID               forget a VM, as if it had been deleted at the hypervisor
  add ID [--power STATE]  add a VM Lucid did not create (default power: running)
  env                     print the plugin process's environment, one NAME=VALUE a line
`

// ctlTimeout bounds one control request.
const ctlTimeout = 10 * time.Second

// runCtl runs `lucid-driver-fake ctl args...` and returns the exit status:
// 0 done, 1 the request failed, 2 a bad command line.
func runCtl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage) }
	socket := fs.String("socket", "", "the control_socket path from the driver config")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "lucid-driver-fake ctl: "+format+"\n\n%s", append(a, ctlUsage)...)
		return 2
	}
	if *socket == "" {
		return usage("--socket is required")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usage("no command")
	}
	c := &ctlClient{socket: *socket}
	var err error
	switch cmd, args := rest[0], rest[1:]; cmd {
	case "list":
		if len(args) != 0 {
			return usage("list takes no arguments")
		}
		err = c.list(stdout)
	case "power":
		if len(args) != 2 {
			return usage("power needs ID and STATE")
		}
		err = c.do(http.MethodPut, "/vms/"+args[0]+"/power", map[string]string{"power": args[1]})
	case "vanish":
		if len(args) != 1 {
			return usage("vanish needs ID")
		}
		err = c.do(http.MethodDelete, "/vms/"+args[0], nil)
	case "add":
		addFlags := flag.NewFlagSet("add", flag.ContinueOnError)
		addFlags.SetOutput(stderr)
		power := addFlags.String("power", "running", "the new VM's power state")
		// Accept the flag before or after the ID.
		var ids []string
		for len(args) > 0 {
			if err := addFlags.Parse(args); err != nil {
				return 2
			}
			args = addFlags.Args()
			if len(args) > 0 {
				ids, args = append(ids, args[0]), args[1:]
			}
		}
		if len(ids) != 1 {
			return usage("add needs one ID")
		}
		err = c.do(http.MethodPost, "/vms", map[string]string{"id": ids[0], "power": *power})
	case "env":
		if len(args) != 0 {
			return usage("env takes no arguments")
		}
		err = c.env(stdout)
	default:
		return usage("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintf(stderr, "lucid-driver-fake ctl: %v\n", err)
		return 1
	}
	return 0
}

// ctlClient talks HTTP to the control socket.
type ctlClient struct{ socket string }

func (c *ctlClient) request(method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://fake"+path, rd)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", c.socket)
		},
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is control_socket set in the driver config and the plugin running?)", c.socket, err)
	}
	// Read the body before ctx is cancelled.
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, e.Error)
	}
	return resp, nil
}

func (c *ctlClient) do(method, path string, body any) error {
	_, err := c.request(method, path, body)
	return err
}

func (c *ctlClient) list(w io.Writer) error {
	resp, err := c.request(http.MethodGet, "/vms", nil)
	if err != nil {
		return err
	}
	var vms []instance
	if err := json.NewDecoder(resp.Body).Decode(&vms); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPOWER\tFLAVOR\tIMAGE\tNOTES")
	for _, vm := range vms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", vm.ID, vm.Power, orDash(vm.Flavor.Name), orDash(vm.Image.ID), notes(vm))
	}
	return tw.Flush()
}

func (c *ctlClient) env(w io.Writer) error {
	resp, err := c.request(http.MethodGet, "/env", nil)
	if err != nil {
		return err
	}
	var env []string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("env: %w", err)
	}
	for _, kv := range env {
		fmt.Fprintln(w, kv)
	}
	return nil
}

func notes(vm instance) string {
	var n []string
	if vm.Unmanaged {
		n = append(n, "unmanaged")
	}
	if vm.Resizing != nil {
		n = append(n, fmt.Sprintf("resize to %s: %s done", orDash(vm.Resizing.Flavor.Name), vm.Resizing.Step))
	}
	if vm.OldFlavor != nil {
		n = append(n, fmt.Sprintf("resized from %s, awaiting confirm or revert", orDash(vm.OldFlavor.Name)))
	}
	return orDash(strings.Join(n, "; "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

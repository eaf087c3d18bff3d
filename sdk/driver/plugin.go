package driver

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/lucid-project/lucid/sdk/driver/driverpb"
)

// Serve runs d as a driver plugin: it handshakes with the host on stdout and
// serves gRPC until the host kills or disconnects it. A plugin's main calls
// it and nothing else. Run by hand (without the host's handshake
// environment) it prints a short notice and exits with status 1.
//
// Info answers with the capabilities d declares plus those of the optional
// interfaces d implements (see Capabilities), so a driver need not list
// CapRebuild, CapResize or CapEvents itself.
//
// Serve also watches its parent: when the host dies, even by SIGKILL,
// the plugin is re-parented and Serve exits the process (status 3) within
// parentPoll, so a dead host never leaves a driver running beside its
// successor's. The host's own guard (a parent-death signal on Linux) is
// quicker; this one covers any OS and any host.
func Serve(d Driver) {
	go watchParent(os.Getppid(), parentPoll, func() { os.Exit(3) })
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(d),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// PluginSet is the go-plugin plugin map holding one driver under
// PluginName. The plugin side passes its implementation; the host passes
// nil and dispenses PluginName to get a client that implements Driver.
func PluginSet(impl Driver) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}

// GRPCPlugin adapts a Driver to go-plugin, which wants the server and the
// client side in one type. Impl is used only on the plugin side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Driver
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers Impl on s (plugin side).
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("driver: GRPCPlugin.Impl is nil")
	}
	driverpb.RegisterDriverServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a Driver that calls the plugin over cc (host side).
// The result's concrete type is *Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return NewClient(cc), nil
}

// parentPoll is how often Serve checks that its parent is still the host
// that started it. getppid is a cheap system call.
const parentPoll = 250 * time.Millisecond

// watchParent calls gone once the process's parent is no longer ppid (the
// host died and the process was re-parented to init or a subreaper), and
// then returns. It never returns otherwise.
func watchParent(ppid int, every time.Duration, gone func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			gone()
			return
		}
	}
}

// Package cli is Lucid's command line: `lucid serve`, `lucid config
// validate`, and the client commands (`lucid server …`, `lucid flavor
// list`, `lucid image list`). main.go calls Run, so the whole CLI runs
// in-process in tests. Each subcommand is one function in its own file;
// this file assembles them.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/core/api/client"
	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/identity"
)

// Run executes the command line args (args[0] is the program name),
// writing to stdout and stderr. It returns the error to report; main
// exits non-zero on any.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &ucli.App{
		Name:      "lucid",
		Usage:     "a compute control plane whose instance states tell the truth",
		Writer:    stdout,
		ErrWriter: stderr,
		// urfave/cli would call os.Exit on errors; Run returns them.
		ExitErrHandler: func(*ucli.Context, error) {},
		Commands: []*ucli.Command{
			serveCommand(),
			{
				Name:        "config",
				Usage:       "work with config files",
				Subcommands: []*ucli.Command{configValidateCommand()},
			},
			{
				Name:  "server",
				Usage: "manage instances through the API",
				Subcommands: []*ucli.Command{
					serverCreateCommand(), serverShowCommand(), serverListCommand(), serverDeleteCommand(),
					serverHistoryCommand(), serverStopCommand(), serverStartCommand(), serverRebootCommand(),
					serverRebuildCommand(), serverResizeCommand(), serverConfirmResizeCommand(), serverRevertResizeCommand(),
					serverFlagsCommand(), serverUnflagCommand(),
				},
			},
			{
				Name:        "bench",
				Usage:       "measure a running Lucid",
				Subcommands: []*ucli.Command{benchSoakCommand(), benchThroughputCommand()},
			},
			{
				Name:        "flavor",
				Usage:       "the flavor catalog",
				Subcommands: []*ucli.Command{flavorListCommand()},
			},
			{
				Name:        "image",
				Usage:       "the image catalog",
				Subcommands: []*ucli.Command{imageListCommand()},
			},
		},
	}
	return app.RunContext(ctx, args)
}

func configFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "config.hcl", Usage: "operator config file", EnvVars: []string{"LUCID_CONFIG"}}
}

// clientFlags are the flags every API command takes.
func clientFlags(extra ...ucli.Flag) []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "endpoint", Aliases: []string{"e"}, Usage: "Lucid API URL (default: from the config file's api.listen)", EnvVars: []string{"LUCID_ENDPOINT"}},
		&ucli.StringFlag{Name: "token", Usage: "a token to send (default: with --endpoint none; without it, one got with the config's clouds.yaml)", EnvVars: []string{"LUCID_TOKEN"}},
		configFlag(),
	}, extra...)
}

// newClient finds the API: --endpoint or LUCID_ENDPOINT, else the listen
// address of the config file (default config.hcl in the working
// directory). It never guesses a port. It sends --token (LUCID_TOKEN) if
// given; else, when it found the API through the config and auth is on,
// it logs in with the clouds.yaml that config's first start wrote (never
// with --endpoint: the admin's password goes only where the config says
// the API is).
func newClient(c *ucli.Context) (*client.Client, error) {
	if ep := c.String("endpoint"); ep != "" {
		cl := client.New(ep)
		cl.Token = c.String("token")
		return cl, nil
	}
	path := c.String("config")
	cfg, err := config.Options{SkipFileChecks: true}.Load(path)
	if err != nil {
		if _, statErr := os.Stat(path); statErr != nil {
			return nil, fmt.Errorf("no API endpoint: pass --endpoint URL, set LUCID_ENDPOINT, or run where %s is (%v)", path, statErr)
		}
		return nil, err
	}
	host, port, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: api.listen %q: %w", path, cfg.API.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if cfg.API.TLS != nil {
		// The system's roots must trust the API's certificate (Go reads
		// SSL_CERT_FILE for a private CA).
		scheme = "https"
	}
	cl := client.New(scheme + "://" + net.JoinHostPort(host, port))
	if cl.Token = c.String("token"); cl.Token != "" || !cfg.AuthEnabled() {
		return cl, nil
	}
	cloudsPath := cfg.CloudsYAMLPath()
	cloud, err := identity.ReadCloud(cloudsPath, identity.CloudName)
	if err != nil {
		return nil, fmt.Errorf("auth is enabled in %s, and its admin's credentials are not readable (%v); pass --token, or run as the user who started lucid serve", path, err)
	}
	a := cloud.Auth
	if _, err := cl.Authenticate(c.Context, a.Username, a.Password, a.ProjectName); err != nil {
		return nil, fmt.Errorf("log in as %s with %s: %w", a.Username, cloudsPath, err)
	}
	return cl, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := logLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// newBufferedLogger is newLogger for a server: its lines are batched
// (logBuffer). Close the buffer last.
func newBufferedLogger(w io.Writer, level string) (*slog.Logger, *logBuffer, error) {
	l, err := logLevel(level)
	if err != nil {
		return nil, nil, err
	}
	b := newLogBuffer(w)
	return slog.New(urgent{slog.NewTextHandler(b, &slog.HandlerOptions{Level: l}), b}), b, nil
}

func logLevel(level string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return l, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return l, nil
}

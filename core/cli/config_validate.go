package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/node"
)

// configValidateCommand checks a config file as lucid serve would.
func configValidateCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "validate",
		Usage: "check a config file and report every problem with file:line:col",
		Description: "Decodes and checks the file, then loads each policy module (with its settings) and\n" +
			"starts each driver plugin (with its config) and stops them again, so a module that\n" +
			"is not WebAssembly or a driver that rejects its config is caught before deployment.\n" +
			"--offline only decodes and checks the file, without looking for plugins and modules.",
		Flags: []ucli.Flag{configFlag(), &ucli.BoolFlag{Name: "offline", Usage: "only decode and check the file"}},
		Action: func(c *ucli.Context) error {
			path := c.String("config")
			cfg, err := config.Options{SkipFileChecks: c.Bool("offline")}.Load(path)
			if err != nil {
				return err
			}
			if !c.Bool("offline") {
				logger, _ := newLogger(c.App.ErrWriter, "warn")
				if err := node.Check(c.Context, cfg, logger); err != nil {
					return err
				}
			}
			fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
			return nil
		},
	}
}

package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverRebootCommand() *ucli.Command {
	hard := &ucli.BoolFlag{Name: "hard", Usage: "reset instead of asking the guest (HARD_REBOOT)"}
	return actionCommand("reboot", "reboot an instance: REBOOT (or HARD_REBOOT), then ACTIVE", []ucli.Flag{hard}, func(c *ucli.Context) (any, int, error) {
		kind := "SOFT"
		if c.Bool("hard") {
			kind = "HARD"
		}
		return map[string]any{"reboot": map[string]string{"type": kind}}, http.StatusAccepted, nil
	})
}

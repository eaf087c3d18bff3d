package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverStopCommand() *ucli.Command {
	return actionCommand("stop", "power an instance off: STOPPING, then SHUTOFF", nil, func(*ucli.Context) (any, int, error) {
		return map[string]any{"os-stop": nil}, http.StatusAccepted, nil
	})
}

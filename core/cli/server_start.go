package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverStartCommand() *ucli.Command {
	return actionCommand("start", "power an instance on: STARTING, then ACTIVE", nil, func(*ucli.Context) (any, int, error) {
		return map[string]any{"os-start": nil}, http.StatusAccepted, nil
	})
}

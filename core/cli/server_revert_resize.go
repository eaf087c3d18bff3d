package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverRevertResizeCommand() *ucli.Command {
	return actionCommand("revert-resize", "go back to the old flavor: REVERT_RESIZE, then ACTIVE (SHUTOFF if it was)", nil, func(*ucli.Context) (any, int, error) {
		return map[string]any{"revertResize": nil}, http.StatusAccepted, nil
	})
}

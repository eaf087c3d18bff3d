package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverConfirmResizeCommand() *ucli.Command {
	return actionCommand("confirm-resize", "keep the new flavor: VERIFY_RESIZE, then ACTIVE (SHUTOFF if it was)", nil, func(*ucli.Context) (any, int, error) {
		return map[string]any{"confirmResize": nil}, http.StatusNoContent, nil
	})
}

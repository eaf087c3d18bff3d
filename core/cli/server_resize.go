package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverResizeCommand() *ucli.Command {
	flags := []ucli.Flag{&ucli.StringFlag{Name: "flavor", Required: true, Usage: "flavor ID or name to resize to"}}
	return actionCommand("resize", "resize an instance: QUEUE_RESIZE, PREP_RESIZE, RESIZE, then VERIFY_RESIZE", flags, func(c *ucli.Context) (any, int, error) {
		return map[string]any{"resize": map[string]string{"flavorRef": c.String("flavor")}}, http.StatusAccepted, nil
	})
}

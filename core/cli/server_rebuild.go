package cli

import (
	"net/http"

	ucli "github.com/urfave/cli/v2"
)

func serverRebuildCommand() *ucli.Command {
	flags := []ucli.Flag{
		&ucli.StringFlag{Name: "image", Required: true, Usage: "image ID or name to rebuild from"},
		&ucli.StringFlag{Name: "name", Usage: "a new name"},
	}
	return actionCommand("rebuild", "reinstall an instance from an image: REBUILD, then ACTIVE (SHUTOFF if it was)", flags, func(c *ucli.Context) (any, int, error) {
		b := map[string]any{"imageRef": c.String("image")}
		if n := c.String("name"); n != "" {
			b["name"] = n
		}
		return map[string]any{"rebuild": b}, http.StatusAccepted, nil
	})
}

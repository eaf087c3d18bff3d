// Command lucid is the Lucid compute control plane. See README.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/lucid-project/lucid/core/cli"
)

func main() {
	if err := cli.Run(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

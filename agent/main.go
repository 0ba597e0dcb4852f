// Command agent runs in each member cluster: it points workloads at the backups the hub has
// made, keeps pull credentials in each namespace and serves the admission webhooks.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "agent: not yet implemented (see issue 5)")
	os.Exit(1)
}

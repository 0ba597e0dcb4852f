// Command hub watches the member clusters registered by kubeconfig Secrets, copies the public
// images their workloads run into the backup registry once for the whole fleet, and records
// the result as ClonedImages in each member.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hub: not yet implemented (see issue 4)")
	os.Exit(1)
}

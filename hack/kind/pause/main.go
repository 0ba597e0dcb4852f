// Command pause is the sandbox image of image-cloner's kind nodes (registry.k8s.io/pause:3.10,
// which kind's containerd config names) and the runnable sample image of the kind-only e2e specs:
// it does nothing until SIGINT or SIGTERM, then exits 0. A static Go binary, so the image is
// one file, built here (nothing can be pulled). Kubernetes' own pause is build/pause/linux/pause.c.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause (image-cloner hack/kind/pause)\n")
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}

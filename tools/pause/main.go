// Command pause is what a pod sandbox's infrastructure container runs (as registry.k8s.io/pause
// does): it holds the pod's namespaces, reaps orphaned children when it is pid 1 of a shared process
// namespace, and exits on SIGINT or SIGTERM. The e2e node builds its pause image from it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// Command grace runs Grace: the HTTP API (serve), the email worker (worker),
// migrations (migrate), the demo content (seed) and account administration
// (coach create).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // IANA zones must resolve even in a distroless image
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "grace:", err)
		os.Exit(1)
	}
}

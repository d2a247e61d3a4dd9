// Command mkguest builds the refuge integration tests' guest (see package
// guest): go run ./internal/guest/mkguest [-out DIR].
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/refuge-project/refuge/internal/guest"
)

func main() {
	out := flag.String("out", guest.DefaultDir(), "directory for vmlinuz and initrd.gz")
	flag.Parse()
	img, err := guest.Build(context.Background(), *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkguest:", err)
		os.Exit(1)
	}
	fmt.Printf("kernel %s\ninitrd %s\n", img.Kernel, img.Initrd)
}

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release, set at build time with
// -ldflags "-X main.version=v1.2.3"; otherwise the module version.
var version = ""

// versionString is the version, the commit and the Go release the binary
// was built from, as far as the build recorded them.
func versionString() string {
	v, revision, modified := version, "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	out := "tokend " + v
	if revision != "" {
		out += " commit " + revision[:min(12, len(revision))]
		if modified {
			out += " (modified)"
		}
	}
	return out + " " + runtime.Version()
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of tokend",
		Long:    `Print the version, the commit and the Go release tokend was built from.`,
		Example: `  tokend version`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.stdout, versionString())
			return err
		},
	}
}

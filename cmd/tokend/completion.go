package main

import "github.com/spf13/cobra"

func newCompletionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the script that makes your shell complete tokend's commands, flags and
flag values. Load it in the current shell, or install it where your shell
looks for completions.`,
		Example: `  source <(tokend completion bash)
  tokend completion bash > /etc/bash_completion.d/tokend
  tokend completion zsh > "${fpath[1]}/_tokend"
  tokend completion fish > ~/.config/fish/completions/tokend.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			default:
				return root.GenFishCompletion(a.stdout, true)
			}
		},
	}
}

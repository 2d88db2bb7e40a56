package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// These tests run the built binary's client commands (TestMain builds it)
// against a real server on :0 ports, as an admin would from a shell.

// cliResult is what one command did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cliEnv is the environment of the client commands against p: its gRPC
// address, an admin token, and a private home and config directory.
func cliEnv(t *testing.T, p *proc, secret string, extra ...string) []string {
	t.Helper()
	home := t.TempDir()
	env := tokendEnv("TOKEND_ADDR="+p.grpc, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	if secret != "" {
		env = append(env, "TOKEND_TOKEN="+secret)
	}
	return append(env, extra...)
}

// tokend runs the binary with args, stdin and env, and waits for it.
func tokend(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	return runTokend(t, env, strings.NewReader(stdin), args...)
}

func runTokend(t *testing.T, env []string, stdin io.Reader, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(tokendBin, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("tokend %q: %v", args, err)
	}
	return r
}

// ok runs a command that must succeed.
func ok(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	r := tokend(t, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("tokend %q exits %d:\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// okJSON runs a command with -o json that must succeed, and decodes it.
func okJSON(t *testing.T, env []string, stdin string, args ...string) map[string]any {
	t.Helper()
	r := ok(t, env, stdin, append(args, "-o", "json")...)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("tokend %q -o json printed no JSON object (%v):\n%s", args, err, r.stdout)
	}
	return v
}

// fails runs a command that must exit with code and say mention on stderr,
// in one line when it is not a usage error.
func fails(t *testing.T, env []string, stdin string, code int, mention string, args ...string) cliResult {
	t.Helper()
	r := tokend(t, env, stdin, args...)
	if r.code != code {
		t.Errorf("tokend %q exits %d, want %d:\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, mention) {
		t.Errorf("tokend %q: stderr does not say %q:\n%s", args, mention, r.stderr)
	}
	if code == exitFailure && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("tokend %q: the error is not one line:\n%s", args, r.stderr)
	}
	return r
}

// items returns the list of objects at key.
func items(v map[string]any, key string) []map[string]any {
	var out []map[string]any
	list, _ := v[key].([]any)
	for _, it := range list {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

func names(tokens []map[string]any) []string {
	var out []string
	for _, t := range tokens {
		out = append(out, get(t, "name"))
	}
	return out
}

// serveForCLI starts tokend and returns it with its root admin token.
func serveForCLI(t *testing.T) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root.token")
	p := startTokend(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "data"), "-root-token-file", rootFile)
	data, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	return p, strings.TrimSpace(string(data))
}

const (
	find    = "api::article.article.find"
	findOne = "api::article.article.findOne"
	create  = "api::article.article.create"
	remove  = "api::article.article.delete"
)

func TestCLI(t *testing.T) {
	p, root := serveForCLI(t)
	env := cliEnv(t, p, root)
	dir := t.TempDir()

	t.Run("ActionRegisterAndList", func(t *testing.T) {
		v := okJSON(t, env, "", "action", "register", find+"=List articles", findOne+"=Read an article")
		if got := items(v, "actions"); len(got) != 2 || get(got[0], "id") != find || get(got[0], "description") != "List articles" {
			t.Errorf("register: %v", v)
		}
		file := filepath.Join(dir, "actions.json")
		os.WriteFile(file, []byte(`{"actions": [{"id": "`+create+`", "description": "Write an article"}]}`), 0o600)
		ok(t, env, "", "action", "register", "--file", file)
		ok(t, env, `{"actions": [{"id": "`+remove+`"}]}`, "action", "register", "--file", "-")
		v = okJSON(t, env, "", "action", "list")
		var ids []string
		for _, a := range items(v, "actions") {
			ids = append(ids, get(a, "id"))
		}
		if want := []string{create, remove, find, findOne}; !slices.Equal(ids, want) {
			t.Errorf("action list: %q, want %q", ids, want)
		}
		table := ok(t, env, "", "action", "list").stdout
		if !regexp.MustCompile(`(?m)^api::article\.article\.create +Write an article$`).MatchString(table) {
			t.Errorf("action list table:\n%s", table)
		}
		v = okJSON(t, env, "", "action", "list", "--kind", "admin")
		if a := items(v, "actions"); len(a) < 9 || !strings.HasPrefix(get(a[0], "id"), "tokend.") {
			t.Errorf("admin actions: %v", v)
		}
		fails(t, env, "", exitFailure, "actions[0].id", "action", "register", "not an action!")
		fails(t, env, "", exitUsage, "--file", "action", "register", "--file", "-")
		fails(t, env, "", exitUsage, "no action", "action", "register")
	})

	// The known set: created here, checked below by the list and by name.
	var website, editor, auditor map[string]any
	var editorSecret, auditorSecret string
	t.Run("Create", func(t *testing.T) {
		r := ok(t, env, "", "token", "create", "Website", "--description", "Public site", "--lifespan", "7d")
		secret := strings.TrimSuffix(r.stdout, "\n")
		if !regexp.MustCompile(`^tkd_[0-9A-Za-z]+$`).MatchString(secret) {
			t.Errorf("create printed %q on stdout, want the secret alone on its line", r.stdout)
		}
		if !strings.Contains(r.stderr, "will not be shown again") || strings.Contains(r.stderr, secret) {
			t.Errorf("create's stderr: %q", r.stderr)
		}
		website = okJSON(t, env, "", "token", "get", "website")["token"].(map[string]any)
		if get(website, "description") != "Public site" || get(website, "type") != "TOKEN_TYPE_READ_ONLY" || get(website, "lifespan") != "604800s" {
			t.Errorf("Website: %v", website)
		}
		// The secret printed is the token's: it introspects active.
		ok(t, env, secret+"\n", "token", "introspect", "--action", find)

		file := filepath.Join(dir, "editor.token")
		v := okJSON(t, env, "", "token", "create", "Editor bot", "--permission", find, "--permission", create,
			"--lifespan", "90d", "--secret-file", file)
		editor = v["token"].(map[string]any)
		if get(v, "secret") != "" || get(editor, "type") != "TOKEN_TYPE_CUSTOM" {
			t.Errorf("create --secret-file -o json: %v", v)
		}
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("--secret-file mode %v, want 0600", info.Mode().Perm())
		}
		data, _ := os.ReadFile(file)
		editorSecret = strings.TrimSpace(string(data))
		if !strings.HasPrefix(editorSecret, "tkd_") {
			t.Errorf("--secret-file holds %q", data)
		}

		v = okJSON(t, env, "", "token", "create", "Auditor", "--admin", "--permission", "tokend.token.find")
		auditor, auditorSecret = v["token"].(map[string]any), get(v, "secret")
		if get(auditor, "kind") != "TOKEN_KIND_ADMIN" || !strings.HasPrefix(get(v, "secret"), "tkda_") {
			t.Errorf("admin token: %v", v)
		}
	})

	t.Run("List", func(t *testing.T) {
		v := okJSON(t, env, "", "token", "list")
		if got, want := names(items(v, "tokens")), []string{"Auditor", "Editor bot", "Full Access", "Read Only", "Root", "Website"}; !slices.Equal(got, want) {
			t.Errorf("list: %q, want %q", got, want)
		}
		table := ok(t, env, "", "token", "list", "--kind", "api").stdout
		lines := strings.Split(strings.TrimSpace(table), "\n")
		want := []string{
			`^NAME +ID +KIND +TYPE +EXPIRES +LAST USED +CREATED$`,
			`^Editor bot +` + get(editor, "id") + ` +api +custom +in 89 days +never +just now$`,
			`^Full Access +\S+ +api +full-access +never +never +just now$`,
			`^Read Only +\S+ +api +read-only +never +never +just now$`,
			`^Website +` + get(website, "id") + ` +api +read-only +in 6 days +\S.* +just now$`,
		}
		if len(lines) != len(want) {
			t.Fatalf("list --kind api: %d lines, want %d:\n%s", len(lines), len(want), table)
		}
		for i, re := range want {
			if !regexp.MustCompile(re).MatchString(lines[i]) {
				t.Errorf("list line %d %q does not match %s", i, lines[i], re)
			}
		}
		for _, tt := range []struct {
			name string
			args []string
			want []string
		}{
			{"Admin", []string{"--kind", "admin"}, []string{"Auditor", "Root"}},
			{"Custom", []string{"--type", "custom"}, []string{"Auditor", "Editor bot"}},
			{"CustomAPI", []string{"--type", "custom", "--kind", "api"}, []string{"Editor bot"}},
			{"ExpiringWithin", []string{"--expiring-within", "8d"}, []string{"Website"}},
			{"NewestFirst", []string{"--order-by", "created", "--limit", "2"}, []string{"Auditor", "Editor bot"}},
			{"Limit", []string{"--limit", "3"}, []string{"Auditor", "Editor bot", "Full Access"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				v := okJSON(t, env, "", append([]string{"token", "list"}, tt.args...)...)
				if got := names(items(v, "tokens")); !slices.Equal(got, tt.want) {
					t.Errorf("list %q: %q, want %q", tt.args, got, tt.want)
				}
			})
		}
		// Only Root (every call) and Website (introspected) have been used.
		got := names(items(okJSON(t, env, "", "token", "list", "--order-by", "last-used", "--limit", "2"), "tokens"))
		if slices.Sort(got); !slices.Equal(got, []string{"Root", "Website"}) {
			t.Errorf("list --order-by last-used --limit 2: %q, want Root and Website", got)
		}
	})

	t.Run("IDsAndNames", func(t *testing.T) {
		for _, ref := range []string{get(editor, "id"), "Editor bot", "EDITOR BOT", "  editor bot "} {
			if got := get(okJSON(t, env, "", "token", "get", ref), "token", "id"); got != get(editor, "id") {
				t.Errorf("token get %q: id %q, want %q", ref, got, get(editor, "id"))
			}
		}
		table := ok(t, env, "", "token", "get", "website").stdout
		for _, want := range []string{"Name:         Website", "Lifespan:     7 days", "(in 6 days)", "Last used:    ", "Secret hint:  tkd_…"} {
			if !strings.Contains(table, want) {
				t.Errorf("token get table lacks %q:\n%s", want, table)
			}
		}
		fails(t, env, "", exitFailure, `no token has the id or name "nobody"`, "token", "get", "nobody")
		// The shell completes token names from the server.
		out := ok(t, env, "", "__complete", "token", "delete", "ed").stdout
		if !strings.HasPrefix(out, "Editor bot\n:4\n") {
			t.Errorf("completion of a token name:\n%s", out)
		}
	})

	t.Run("Update", func(t *testing.T) {
		v := okJSON(t, env, "", "token", "update", "editor bot", "--description", "Writes drafts", "--permission", find, "--permission", findOne)
		tok := v["token"].(map[string]any)
		if get(tok, "description") != "Writes drafts" || get(tok, "id") != get(editor, "id") || get(tok, "lifespan") != "7776000s" {
			t.Errorf("update: %v", v)
		}
		if p, _ := tok["permissions"].([]any); len(p) != 2 || p[0] != find || p[1] != findOne {
			t.Errorf("update --permission: %v", tok["permissions"])
		}
		v = okJSON(t, env, "", "token", "update", get(website, "id"), "--name", "Web site", "--lifespan", "unlimited", "--type", "full-access")
		tok = v["token"].(map[string]any)
		if get(tok, "name") != "Web site" || tok["lifespan"] != nil || tok["expireTime"] != nil || get(tok, "type") != "TOKEN_TYPE_FULL_ACCESS" {
			t.Errorf("update by id: %v", v)
		}
		ok(t, env, "", "token", "update", "web site", "--name", "Website", "--type", "read-only", "--lifespan", "7d")
		fails(t, env, "", exitUsage, "nothing to change", "token", "update", "website")
		fails(t, env, "", exitFailure, "token.name", "token", "update", "website", "--name", "editor BOT")
	})

	t.Run("Introspect", func(t *testing.T) {
		for _, tt := range []struct {
			name, secret string
			args         []string
			code         int
		}{
			{"Allowed", editorSecret, []string{"--action", find, "--action", findOne}, 0},
			{"NoActions", editorSecret, nil, 0},
			{"Denied", editorSecret, []string{"--action", find, "--action", remove}, 1},
			{"Malformed", "tkd_nope", nil, 1},
			{"Unknown", "tkd_" + strings.Repeat("a", 49), nil, 1},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := tokend(t, env, tt.secret+"\n", append([]string{"token", "introspect"}, tt.args...)...)
				if r.code != tt.code {
					t.Errorf("introspect exits %d, want %d:\n%s%s", r.code, tt.code, r.stdout, r.stderr)
				}
				if r.stderr != "" {
					t.Errorf("introspect wrote to stderr: %q", r.stderr)
				}
			})
		}
		v := okJSON(t, env, editorSecret, "token", "introspect", "--action", find)
		if v["active"] != true || v["allowed"] != true || get(v, "token", "id") != get(editor, "id") {
			t.Errorf("introspect -o json: %v", v)
		}
		r := tokend(t, env, editorSecret, "token", "introspect", "--action", remove)
		if !strings.Contains(r.stdout, "Allowed:  no") || !strings.Contains(r.stdout, "Denied:   "+remove) {
			t.Errorf("introspect table:\n%s", r.stdout)
		}
		fails(t, env, "", exitUsage, "no secret on stdin", "token", "introspect")
	})

	t.Run("Regenerate", func(t *testing.T) {
		v := okJSON(t, env, "", "token", "regenerate", "Editor bot", "--grace", "1h")
		newSecret := get(v, "secret")
		if !strings.HasPrefix(newSecret, "tkd_") || newSecret == editorSecret || get(v, "token", "previousSecretExpireTime") == "" {
			t.Fatalf("regenerate --grace: %v", v)
		}
		ok(t, env, editorSecret, "token", "introspect") // the grace period
		ok(t, env, newSecret, "token", "introspect")

		file := filepath.Join(dir, "editor.token")
		os.Chmod(file, 0o644) // replaced by a file only its owner reads
		r := ok(t, env, "", "token", "regenerate", get(editor, "id"), "--secret-file", file)
		if r.stdout != "" {
			t.Errorf("regenerate --secret-file printed %q", r.stdout)
		}
		info, _ := os.Stat(file)
		data, _ := os.ReadFile(file)
		if info.Mode().Perm() != 0o600 || strings.TrimSpace(string(data)) == newSecret {
			t.Errorf("--secret-file after regenerate: mode %v, old secret %v", info.Mode().Perm(), strings.TrimSpace(string(data)) == newSecret)
		}
		ok(t, env, string(data), "token", "introspect")
		fails(t, env, newSecret, exitFailure, "", "token", "introspect") // no grace this time
		fails(t, env, "", exitUsage, "--grace", "token", "regenerate", "website", "--grace", "25h")
	})

	t.Run("Delete", func(t *testing.T) {
		fails(t, env, "", exitUsage, "--yes", "token", "delete", "website")
		ok(t, env, "", "token", "get", "website") // still there
		v := okJSON(t, env, "", "token", "delete", "WEBSITE", "--yes")
		if len(v) != 0 {
			t.Errorf("delete -o json: %v", v)
		}
		fails(t, env, "", exitFailure, "website", "token", "get", "website")
		fails(t, env, "", exitFailure, "nobody", "token", "delete", "nobody", "--yes")
	})

	t.Run("Audit", func(t *testing.T) {
		v := okJSON(t, env, "", "audit", "list", "--limit", "3")
		events := items(v, "auditEvents")
		if len(events) != 3 || get(events[0], "operation") != "AUDIT_OPERATION_DELETE_TOKEN" || get(events[0], "targetName") != "Website" {
			t.Errorf("audit list --limit 3: %v", v)
		}
		all := items(okJSON(t, env, "", "audit", "list"), "auditEvents")
		if last := all[len(all)-1]; get(last, "operation") != "AUDIT_OPERATION_BOOTSTRAP" {
			t.Errorf("oldest event %v, want the bootstrap", last)
		}
		v = okJSON(t, env, "", "audit", "list", "--token", "editor bot")
		for _, e := range items(v, "auditEvents") {
			if get(e, "targetId") != get(editor, "id") {
				t.Errorf("audit list --token: event about %v", e)
			}
		}
		table := ok(t, env, "", "audit", "list", "--limit", "1").stdout
		if !regexp.MustCompile(`(?m)^just now +delete token +Website +Root +`).MatchString(table) {
			t.Errorf("audit table:\n%s", table)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			args    []string
			code    int
			mention string
		}{
			{"LifespanNotADuration", []string{"token", "create", "x", "--lifespan", "soon"}, exitUsage, `--lifespan "soon"`},
			{"LifespanNotAPreset", []string{"token", "create", "x", "--lifespan", "1d"}, exitFailure, `token.lifespan: must be one of "604800s" (7 days)`},
			{"DuplicateName", []string{"token", "create", "editor BOT"}, exitFailure, "token.name: another token already has this name"},
			{"NameTooLong", []string{"token", "create", strings.Repeat("n", 101)}, exitFailure, "token.name: must be at most 100 characters"},
			{"UnknownPermission", []string{"token", "create", "x", "--permission", "api::nope.nope.find"}, exitFailure, "token.permissions"},
			{"PermissionOnReadOnly", []string{"token", "create", "x", "--type", "read-only", "--permission", find}, exitUsage, "only custom tokens"},
			{"BadType", []string{"token", "create", "x", "--type", "admin"}, exitUsage, `--type "admin"`},
			{"MissingName", []string{"token", "create"}, exitUsage, "accepts 1 arg"},
			{"UnknownFlag", []string{"token", "list", "--bogus"}, exitUsage, "--bogus"},
			{"BadOutput", []string{"token", "list", "-o", "yaml"}, exitUsage, `--output "yaml"`},
			{"BadOrder", []string{"token", "list", "--order-by", "age"}, exitUsage, "--order-by"},
			{"BadKind", []string{"token", "list", "--kind", "robot"}, exitUsage, "--kind"},
			{"UnknownCommand", []string{"token", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
			{"MissingCommand", []string{"token"}, exitUsage, "missing command"},
			{"SecretFileUnwritable", []string{"token", "create", "x", "--secret-file", "/nonexistent/dir/x.token"}, exitFailure, "--secret-file"},
			{"PlaintextAndTLS", []string{"token", "list", "--plaintext", "--tls-ca", "ca.pem"}, exitUsage, "--plaintext"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				fails(t, env, "", tt.code, tt.mention, tt.args...)
			})
		}
		// Nothing was created by the failures above.
		if got := names(items(okJSON(t, env, "", "token", "list"), "tokens")); slices.Contains(got, "x") {
			t.Errorf("a failed create left a token: %q", got)
		}
	})

	t.Run("Credentials", func(t *testing.T) {
		noToken := cliEnv(t, p, "")
		fails(t, noToken, "", exitFailure, "no admin token", "token", "list")
		fails(t, cliEnv(t, p, "tkda_forged"), "", exitFailure, "the admin token was refused", "token", "list")
		fails(t, cliEnv(t, p, "", "TOKEND_TOKEN_FILE=/nonexistent"), "", exitFailure, "token file", "token", "list")

		file := filepath.Join(t.TempDir(), "admin.token")
		os.WriteFile(file, []byte(root+"\n"), 0o600)
		ok(t, noToken, "", "token", "list", "--token-file", file)
		ok(t, cliEnv(t, p, "", "TOKEND_TOKEN_FILE="+file), "", "token", "list")
		os.Chmod(file, 0o644)
		fails(t, noToken, "", exitFailure, "readable by others", "token", "list", "--token-file", file)
		os.Chmod(file, 0o640)
		fails(t, noToken, "", exitFailure, "readable by others", "token", "list", "--token-file", file)

		// The default: tokend/token in the user's config directory.
		var config string
		for _, kv := range noToken {
			if v, ok := strings.CutPrefix(kv, "XDG_CONFIG_HOME="); ok {
				config = v
			}
		}
		os.MkdirAll(filepath.Join(config, "tokend"), 0o700)
		os.WriteFile(filepath.Join(config, "tokend", "token"), []byte(root), 0o600)
		ok(t, noToken, "", "token", "list")
		os.Chmod(filepath.Join(config, "tokend", "token"), 0o604)
		fails(t, noToken, "", exitFailure, "readable by others", "token", "list")

		// The auditor may list, not create.
		ok(t, cliEnv(t, p, auditorSecret), "", "token", "list")
		fails(t, cliEnv(t, p, auditorSecret), "", exitFailure, "permission denied", "token", "create", "x")
	})
}

// TestCLIUnreachable: a server that is not there is one line and exit 1.
func TestCLIUnreachable(t *testing.T) {
	env := tokendEnv("TOKEND_TOKEN=tkda_x", "TOKEND_ADDR=127.0.0.1:1")
	fails(t, env, "", exitFailure, "cannot reach tokend at 127.0.0.1:1", "token", "list")
}

func TestCLICompletionAndVersion(t *testing.T) {
	env := tokendEnv()
	for shell, marker := range map[string]string{
		"bash": "complete -o default -F __start_tokend tokend",
		"zsh":  "#compdef tokend",
		"fish": "complete -c tokend",
	} {
		t.Run(shell, func(t *testing.T) {
			if out := ok(t, env, "", "completion", shell).stdout; !strings.Contains(out, marker) {
				t.Errorf("completion %s lacks %q", shell, marker)
			}
		})
	}
	fails(t, env, "", exitUsage, "powershell", "completion", "powershell")
	fails(t, env, "", exitUsage, "accepts 1 arg", "completion")
	// The scripts call back into the binary: flag values complete.
	out := ok(t, env, "", "__complete", "token", "list", "--order-by", "").stdout
	for _, want := range []string{"name", "created", "last-used"} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("completion of --order-by lacks %q:\n%s", want, out)
		}
	}
	if out := ok(t, env, "", "version").stdout; !regexp.MustCompile(`^tokend \S+ .*go1\.`).MatchString(out) {
		t.Errorf("version: %q", out)
	}
}

// TestCLIHelp: every command has a summary, a description and an example,
// and its --help shows them.
func TestCLIHelp(t *testing.T) {
	env := tokendEnv()
	// Help asked for goes to stdout, exit 0.
	for _, args := range [][]string{{"help"}, {"--help"}, {"-help"}, {"-h"}} {
		if out := ok(t, env, "", args...).stdout; !strings.Contains(out, "tokend serve") || !strings.Contains(out, "Available Commands:") {
			t.Errorf("tokend %q:\n%s", args, out)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		t.Run(strings.Join(append([]string{"tokend"}, path...), "_"), func(t *testing.T) {
			if c.Short == "" || c.Long == "" || c.Example == "" {
				t.Errorf("%q: summary %q, description %d bytes, example %d bytes", c.CommandPath(), c.Short, len(c.Long), len(c.Example))
			}
			args := append(path, "--help")
			if c.DisableFlagParsing {
				args = []string{"help", c.Name()} // serve's and recover-root's own flags answer -help
			}
			out := ok(t, env, "", args...).stdout
			firstLine, _, _ := strings.Cut(strings.TrimSpace(c.Long), "\n")
			if !strings.Contains(out, firstLine) || !strings.Contains(out, "Examples:") {
				t.Errorf("%q --help lacks its description or examples:\n%s", c.CommandPath(), out)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&app{getenv: os.Getenv, now: time.Now}))

	// README.md and `tokend --help` agree: every command is in the README.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var check func(c *cobra.Command)
	check = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.Runnable() && !c.HasSubCommands() && !strings.Contains(string(readme), c.CommandPath()) {
			t.Errorf("README.md does not mention %q", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			check(sub)
		}
	}
	check(newRootCmd(&app{getenv: os.Getenv, now: time.Now}))
}

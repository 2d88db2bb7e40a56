package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what is written to the returned master
// is read from the returned terminal as if typed.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("SKIPPED: no pseudo-terminal on this machine (%v): the terminal prompts are untested", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// onTerminal runs tokend with a terminal as stdin, typing input into it.
func onTerminal(t *testing.T, env []string, input string, args ...string) cliResult {
	t.Helper()
	master, tty := openPTY(t)
	if _, err := master.WriteString(input); err != nil {
		t.Fatal(err)
	}
	return runTokend(t, env, tty, args...)
}

// TestCLIOnATerminal: delete asks on a terminal, and introspect reads the
// secret from it.
func TestCLIOnATerminal(t *testing.T) {
	p, root := serveForCLI(t)
	env := cliEnv(t, p, root)
	secret := strings.TrimSpace(ok(t, env, "", "token", "create", "Doomed").stdout)

	r := onTerminal(t, env, secret+"\n", "token", "introspect")
	if r.code != 0 || !strings.Contains(r.stderr, "Secret:") || !strings.Contains(r.stdout, "Active:   yes") {
		t.Errorf("introspect on a terminal: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	r = onTerminal(t, env, "n\n", "token", "delete", "doomed")
	if r.code != exitFailure || !strings.Contains(r.stderr, `Delete api token "Doomed"`) || !strings.Contains(r.stderr, "not deleted") {
		t.Errorf("delete answered no: exit %d, stderr %q", r.code, r.stderr)
	}
	ok(t, env, "", "token", "get", "doomed")

	r = onTerminal(t, env, "y\n", "token", "delete", "doomed")
	if r.code != 0 || !strings.Contains(r.stderr, `Deleted token "Doomed"`) {
		t.Errorf("delete answered yes: exit %d, stderr %q", r.code, r.stderr)
	}
	fails(t, env, "", exitFailure, "doomed", "token", "get", "doomed")
}

//go:build linux

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid (ours, so no
// privilege is needed): past it, the process's writes that would grow a file
// fail with EFBIG. Go ignores the SIGXFSZ that comes with it.
func setFileSizeLimit(t *testing.T, pid int, limit uint64) {
	t.Helper()
	var old syscall.Rlimit
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		0, uintptr(unsafe.Pointer(&old)), 0, 0); errno != 0 {
		t.Skipf("prlimit: %v", errno)
	}
	lim := syscall.Rlimit{Cur: min(limit, old.Max), Max: old.Max}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
		t.Skipf("prlimit: %v", errno)
	}
}

// TestFileSizeLimit is a real storage failure, not an injected one: the
// running binary's file size limit is lowered to the size of its database,
// so a write that needs a bigger file fails in bbolt with EFBIG, as on a
// full disk. Such a write answers Internal and leaves nothing behind,
// Introspect goes on, /readyz says not ready, and once the limit is lifted
// writes work again and the file is consistent.
func TestFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	rootFile := filepath.Join(dir, "root")
	dbFile := filepath.Join(dataDir, "tokend.db")
	p := startTokend(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-root-token-file", rootFile, "-flush-interval", "50ms")
	c := dialCrash(t, p, rootFile)
	defer c.conn.Close()
	keep, err := c.client.CreateToken(c.ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "keep"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	setFileSizeLimit(t, p.cmd.Process.Pid, uint64(info.Size()))

	// Fill the file until it would have to grow.
	description := strings.Repeat("x", 1000)
	var acked []string
	var failed error
	failedName := ""
	for i := 0; i < 5000 && failed == nil; i++ {
		name := fmt.Sprintf("fill-%d", i)
		resp, err := c.client.CreateToken(c.ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: name, Description: description}})
		if err != nil {
			failed, failedName = err, name
			break
		}
		acked = append(acked, resp.GetToken().GetId())
	}
	if failed == nil {
		t.Fatalf("5000 creates never reached the file size limit of %d bytes", info.Size())
	}
	t.Logf("the file (%d bytes) was full after %d creates: %v", info.Size(), len(acked), failed)
	if st, _ := status.FromError(failed); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("CreateToken on a full file: %v, want Internal \"internal error\"", failed)
	}

	// Reads and introspection go on; the failed create left nothing.
	listed := c.list(t)
	for _, id := range acked {
		if _, ok := listed[id]; !ok {
			t.Errorf("acknowledged token %s missing", id)
		}
	}
	for _, tok := range listed {
		if tok.GetName() == failedName {
			t.Errorf("the failed create of %q left a token behind", failedName)
		}
	}
	if active, _, _ := c.introspect(t, keep.GetSecret()); !active {
		t.Errorf("Introspect stopped working on a full file")
	}
	// A small write may still fit in the file's free pages: it either
	// happens or fails cleanly.
	upd, err := c.client.UpdateToken(c.ctx, &tokendv1.UpdateTokenRequest{
		Token:      &tokendv1.Token{Id: keep.GetToken().GetId(), Description: "on a full file"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	})
	want := "on a full file"
	if st, _ := status.FromError(err); err != nil {
		want = ""
		if st.Code() != codes.Internal || st.Message() != "internal error" {
			t.Errorf("UpdateToken on a full file: %v, want success or Internal \"internal error\"", err)
		}
	} else if upd.GetToken().GetDescription() != want {
		t.Errorf("UpdateToken on a full file answered %v", upd.GetToken())
	}
	if got := c.list(t)[keep.GetToken().GetId()].GetDescription(); got != want {
		t.Errorf("after UpdateToken on a full file (%v), the description is %q, want %q", err, got, want)
	}
	status503, _ := p.call(t, "GET", "/readyz", "", nil)
	if status503 != http.StatusServiceUnavailable {
		t.Errorf("/readyz answers %d while writes fail for want of space, want 503", status503)
	}

	// Room again.
	setFileSizeLimit(t, p.cmd.Process.Pid, ^uint64(0))
	if _, err := c.client.CreateToken(c.ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: failedName, Description: description}}); err != nil {
		t.Errorf("CreateToken once the file can grow again: %v", err)
	}
	if st, _ := p.call(t, "GET", "/readyz", "", nil); st != http.StatusOK {
		t.Errorf("/readyz %d once the file can grow again, want 200", st)
	}
	if !strings.Contains(p.stderrText(), "file too large") {
		t.Errorf("the log does not show the cause (EFBIG)")
	}
	c.conn.Close()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	checkConsistency(t, dbFile, "after the file size limit")
}

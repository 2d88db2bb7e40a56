package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// conditions are the state of the machine a start-up time depends on,
// read just before a start.
type conditions struct {
	load1        float64 // 1-minute load average
	dirty        int64   // bytes of page cache not yet written back (Dirty + Writeback)
	cached, size int64   // bytes of the database file in the page cache, and its size
}

func (c conditions) String() string {
	cached := "unknown"
	if c.size > 0 {
		cached = fmt.Sprintf("%.0f%% of %s", 100*float64(c.cached)/float64(c.size), mib(c.size))
	}
	return fmt.Sprintf("load %.1f, dirty+writeback %s, database file in page cache %s", c.load1, mib(c.dirty), cached)
}

// readConditions reads the load average, the machine's dirty pages and how
// much of the file at path is in the page cache. A figure it cannot read is
// left at zero (the cache at "unknown"): they explain a time, they are not
// the measurement.
func readConditions(path string) conditions {
	var c conditions
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			c.load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			name, value, _ := strings.Cut(sc.Text(), ":")
			if name == "Dirty" || name == "Writeback" {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
				c.dirty += kb << 10
			}
		}
		f.Close()
	}
	c.cached, c.size, _ = pageCached(path)
	return c
}

// pageCached returns how many bytes of the file are in the page cache
// (mincore over a read-only mapping, which reads nothing) and its size.
func pageCached(path string) (cached, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, 0, err
	}
	size = fi.Size()
	m, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, size, err
	}
	defer syscall.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (size+page-1)/page)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(size), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, size, e
	}
	for _, v := range vec {
		if v&1 != 0 {
			cached += page
		}
	}
	return min(cached, size), size, nil
}

// settle flushes the file systems' dirty pages and waits d, so that a start
// does not compete with the write-back of what was just seeded.
func settle(d time.Duration, out io.Writer) {
	begin := time.Now()
	syscall.Sync()
	fmt.Fprintf(out, "sync took %v; settling %v\n", time.Since(begin).Round(time.Millisecond), d)
	time.Sleep(d)
}

// startBaseline starts the tokend binary bin on the data directory of l's
// server name, waits for the line it logs once the tokens are loaded, stops
// it and returns the load time it logged.
func startBaseline(ctx context.Context, bin string, l layout, name string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, "serve",
		"-data-dir", l.dataDir(name), "-hash-key-file", l.keyFile(),
		"-root-token-file", filepath.Join(l.dataDir(name), "root.token"),
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("baseline: %w", err)
	}
	var took time.Duration
	var seen bytes.Buffer
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Took int64  `json:"took"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tokens loaded" {
			took = time.Duration(line.Took)
			break
		}
		if seen.Len() < 4096 {
			seen.Write(sc.Bytes())
			seen.WriteByte('\n')
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, err
	}
	io.Copy(io.Discard, stderr) // until it exits: Wait must come after the last read
	waitErr := cmd.Wait()
	if took == 0 {
		return 0, fmt.Errorf("baseline %s logged no load time: %v\n%s", bin, waitErr, seen.String())
	}
	return took, nil
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// memory is this process's resident memory from /proc/self/status and its
// live Go heap, in bytes.
type memory struct {
	rss, anon, file int64 // VmRSS, RssAnon, RssFile
	heap            int64 // runtime.MemStats.HeapAlloc
}

func readMemory() (memory, error) {
	var m memory
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m, fmt.Errorf("resident memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.rss
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("resident memory: %s: %w", name, err)
		}
		*dst = kb << 10
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap = int64(ms.HeapAlloc)
	return m, sc.Err()
}

func (m memory) minus(o memory) memory {
	return memory{rss: m.rss - o.rss, anon: m.anon - o.anon, file: m.file - o.file, heap: m.heap - o.heap}
}

// settledMemory collects garbage, returns it to the system and reads the
// memory: what the live data costs.
func settledMemory() (memory, error) {
	freeMemory()
	return readMemory()
}

// startTimed starts an in-process server and returns it, how long Start
// took, and the memory it added (raw right after Start, and settled).
func startTimed(ctx context.Context, scfg server.Config) (*server.Server, time.Duration, memory, memory, error) {
	before, err := settledMemory()
	if err != nil {
		return nil, 0, memory{}, memory{}, err
	}
	begin := time.Now()
	srv, err := server.Start(ctx, scfg)
	took := time.Since(begin)
	if err != nil {
		return nil, 0, memory{}, memory{}, err
	}
	raw, err := readMemory()
	if err != nil {
		return srv, took, memory{}, memory{}, err
	}
	settled, err := settledMemory()
	return srv, took, raw.minus(before), settled.minus(before), err
}

// runStartup measures the start-up time and the memory of a server whose
// store holds cfg.startupTokens tokens, against a server with an empty
// store, all in this process. Memory figures are differences of this
// process's resident memory before and after Start, garbage collected.
func runStartup(ctx context.Context, cfg config, out io.Writer) error {
	dir, cleanup, err := workDir(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	l := layout{dir}
	n := cfg.startupTokens
	probes := min(cfg.probeTokens, n, 100)
	begin := time.Now()
	admin, secrets, err := seedDirect(ctx, l, n, probes, cfg.concurrency, cfg.serverLog)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded %d tokens directly in %v\n", n, time.Since(begin).Round(time.Millisecond))

	// The empty server: a first start, bootstrap included.
	srv, emptyTook, _, emptyMem, err := startTimed(ctx, l.serverConfig("empty", cfg.serverLog))
	if err != nil {
		return err
	}
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}

	settle(cfg.settle, out)
	dbFile := filepath.Join(l.dataDir("data"), "tokend.db")
	var starts, baseStarts, watches []time.Duration
	var ratios []float64
	var raw, settled, watched memory
	tokens := 0
	for round := range cfg.rounds {
		// The baseline goes first in even rounds, second in odd ones, so
		// neither always meets the page cache the other left.
		var baseTook time.Duration
		runBaseline := func() error {
			if cfg.baseline == "" {
				return nil
			}
			cond := readConditions(dbFile)
			var err error
			if baseTook, err = startBaseline(ctx, cfg.baseline, l, "data"); err != nil {
				return err
			}
			fmt.Fprintf(out, "round %d baseline: %v (%v)\n", round+1, baseTook.Round(time.Millisecond), cond)
			return nil
		}
		if round%2 == 0 {
			if err := runBaseline(); err != nil {
				return err
			}
		}
		cond := readConditions(dbFile)
		srv, took, r, s, err := startTimed(ctx, l.serverConfig("data", cfg.serverLog))
		if err != nil {
			return err
		}
		ld := srv.Load()
		fmt.Fprintf(out, "round %d: start %v, of which load %v (read %v, decode %v, index %v, %d GC cycles) (%v)\n",
			round+1, took.Round(time.Millisecond), ld.Took.Round(time.Millisecond), ld.Read.Round(time.Millisecond),
			ld.Decode.Round(time.Millisecond), ld.Index.Round(time.Millisecond), ld.GCCycles, cond)
		starts = append(starts, took)
		tokens = srv.Service().TokenCount()
		if round == 0 {
			raw, settled = r, s
			err = errors.Join(checkIntrospect(ctx, srv, admin, secrets[0]), writeHeapProfile(cfg.memProfile))
		}
		if err == nil {
			// The first watch activates the watch, which then keeps a
			// deadline per expiring token: the memory it adds is measured
			// in the first round.
			var unwatched, m memory
			if round == 0 {
				unwatched, err = settledMemory()
			}
			var w time.Duration
			if err == nil {
				w, err = firstWatch(ctx, srv, admin)
			}
			if err == nil && round == 0 {
				m, err = settledMemory()
				watched = m.minus(unwatched)
			}
			fmt.Fprintf(out, "round %d: first watch answered in %v (after the start)\n", round+1, w.Round(time.Millisecond))
			watches = append(watches, w)
		}
		if err := errors.Join(err, srv.Shutdown(ctx)); err != nil {
			return err
		}
		if round%2 == 1 {
			if err := runBaseline(); err != nil {
				return err
			}
		}
		if cfg.baseline != "" {
			baseStarts = append(baseStarts, baseTook)
			ratios = append(ratios, float64(baseTook)/float64(ld.Took))
		}
	}
	slices.Sort(starts)
	perToken := func(d, e int64) float64 { return float64(d-e) / float64(n) }
	fmt.Fprintf(out, "\nmachine: %d CPUs, GOMAXPROCS %d, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(out, "start-up with %d tokens in the index: median %v over %d starts (min %v, max %v); empty store (first start): %v\n",
		tokens, starts[len(starts)/2].Round(time.Millisecond), len(starts), starts[0].Round(time.Millisecond),
		starts[len(starts)-1].Round(time.Millisecond), emptyTook.Round(time.Millisecond))
	slices.Sort(watches)
	fmt.Fprintf(out, "first watch after the start (activates the watch, which reads every token's state and deadline): median %v (min %v, max %v)\n",
		watches[len(watches)/2].Round(time.Millisecond), watches[0].Round(time.Millisecond), watches[len(watches)-1].Round(time.Millisecond))
	if cfg.baseline != "" {
		slices.Sort(baseStarts)
		slices.Sort(ratios)
		fmt.Fprintf(out, "baseline %s, load time it logged: median %v (min %v, max %v); baseline load / this build's load, per round: median %.2f× (min %.2f×, max %.2f×)\n",
			cfg.baseline, baseStarts[len(baseStarts)/2].Round(time.Millisecond), baseStarts[0].Round(time.Millisecond),
			baseStarts[len(baseStarts)-1].Round(time.Millisecond), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}
	fmt.Fprintf(out, "memory added by Start (this process, garbage collected and returned to the system):\n")
	fmt.Fprintf(out, "  %-34s %10s %10s %10s %10s\n", "", "VmRSS", "RssAnon", "RssFile", "Go heap")
	row := func(name string, m memory) {
		fmt.Fprintf(out, "  %-34s %10s %10s %10s %10s\n", name, mib(m.rss), mib(m.anon), mib(m.file), mib(m.heap))
	}
	row("empty store", emptyMem)
	row(fmt.Sprintf("%d tokens", n), settled)
	row(fmt.Sprintf("%d tokens, before GC", n), raw)
	fmt.Fprintf(out, "  bytes per token above the empty server: VmRSS %.0f, RssAnon %.0f, Go heap %.0f (goal ≤ 500 resident)\n",
		perToken(settled.rss, emptyMem.rss), perToken(settled.anon, emptyMem.anon), perToken(settled.heap, emptyMem.heap))
	fmt.Fprintf(out, "  the first watch added: RssAnon %.0f, Go heap %.0f bytes per token (round 1)\n",
		float64(watched.anon)/float64(n), float64(watched.heap)/float64(n))
	fmt.Fprintln(out, "  (RssFile is the bbolt file mapped and read by the replay: page cache the kernel may drop)")
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// firstWatch opens a watch on the started server and returns how long the
// server took to answer it. The first watch of a process activates the
// watch, which then reads the state and the deadline of every token off the
// index.
func firstWatch(ctx context.Context, srv *server.Server, admin string) (time.Duration, error) {
	t := &target{grpcAddr: srv.GRPCAddr().String(), admin: admin}
	client, closeConn, err := tokenClient(t)
	if err != nil {
		return 0, err
	}
	defer closeConn()
	ctx, cancel := context.WithCancel(withAdmin(ctx, admin))
	defer cancel()
	begin := time.Now()
	stream, err := client.WatchTokens(ctx, &tokendv1.WatchTokensRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		return 0, fmt.Errorf("watch tokens: %w", err)
	}
	return time.Since(begin), nil
}

// checkIntrospect makes sure the seeded secrets work on the started server.
func checkIntrospect(ctx context.Context, srv *server.Server, admin, secret string) error {
	t := &target{grpcAddr: srv.GRPCAddr().String(), admin: admin}
	client, closeConn, err := tokenClient(t)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.IntrospectToken(withAdmin(ctx, admin), &tokendv1.IntrospectTokenRequest{Token: secret, Actions: []string{benchAction}})
	if err != nil {
		return fmt.Errorf("introspect a seeded token: %w", err)
	}
	if !resp.GetActive() {
		return errInactive
	}
	return nil
}

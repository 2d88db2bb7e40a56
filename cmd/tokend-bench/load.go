package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
	"github.com/tokend/tokend/storage/etcd"
)

// benchAction is the action every introspection asks about: read-only
// tokens allow it, so every answer is active and allowed.
const benchAction = "api::bench.item.find"

// callTimeout bounds one call beyond the end of its measurement.
const callTimeout = 10 * time.Second

// A probe is one kind of call. newWorker returns the function one worker
// calls in a loop; it may keep state (a reused request) between calls.
type probe struct {
	name      string
	newWorker func(worker int) func(ctx context.Context, i int) error
}

// slug is the probe's name in file names: "gRPC health Check" → "grpc-health-check".
func (p probe) slug() string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, strings.Trim(strings.ReplaceAll(p.name, "/", ""), " "))
}

// result is one measurement of one probe.
type result struct {
	calls    int
	errors   int
	firstErr error
	elapsed  time.Duration
	cpu      time.Duration // CPU time this process used meanwhile
	p50      time.Duration
	p99      time.Duration
}

// cpuShare is the CPU time this process used per second of r (2 = two cores
// busy): on a machine shared with other work, a round far below the cores
// available was starved, and its figures say more about the neighbours than
// about tokend.
func (r result) cpuShare() float64 { return r.cpu.Seconds() / r.elapsed.Seconds() }

// cpuPerCall is the CPU time, client and server, one call cost. It does not
// drop when neighbours take cores away, as throughput does, so its ratios
// are the steadier estimate of what the throughput ratio would be on an
// idle machine.
func (r result) cpuPerCall() float64 { return r.cpu.Seconds() / float64(max(r.calls, 1)) }

func (r result) throughput() float64 { return float64(r.calls) / r.elapsed.Seconds() }

// measure runs p with `concurrency` workers for d and returns the
// throughput and latency of the calls started before the deadline.
func measure(ctx context.Context, p probe, concurrency int, d time.Duration) result {
	cpuBefore := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(callTimeout))
	defer cancel()
	latencies := make([][]time.Duration, concurrency)
	errs := make([]int, concurrency)
	firstErrs := make([]error, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := p.newWorker(w)
			lat := make([]time.Duration, 0, 4096)
			for i := 0; ; i++ {
				begin := time.Now()
				if !begin.Before(deadline) || ctx.Err() != nil {
					break
				}
				err := call(ctx, i)
				lat = append(lat, time.Since(begin))
				if err != nil {
					if errs[w] == 0 {
						firstErrs[w] = err
					}
					errs[w]++
				}
			}
			latencies[w] = lat
		}()
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), cpu: processCPU() - cpuBefore}
	var all []time.Duration
	for w := range concurrency {
		all = append(all, latencies[w]...)
		r.errors += errs[w]
		if r.firstErr == nil {
			r.firstErr = firstErrs[w]
		}
	}
	r.calls = len(all)
	slices.Sort(all)
	r.p50, r.p99 = percentile(all, 0.50), percentile(all, 0.99)
	return r
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// grpcProbes returns gRPC IntrospectToken and grpc.health.v1 Check over the
// same connections: worker w uses connection w mod len(conns).
func grpcProbes(t *target, conns []*grpc.ClientConn) (introspect, health probe) {
	introspect = probe{name: "gRPC IntrospectToken", newWorker: func(w int) func(context.Context, int) error {
		client := tokendv1.NewTokenServiceClient(conns[w%len(conns)])
		req := &tokendv1.IntrospectTokenRequest{Actions: []string{benchAction}}
		offset := w * 7919          // workers start at different secrets
		var authCtx context.Context // the credential rides on the context: attach it once
		return func(ctx context.Context, i int) error {
			if authCtx == nil {
				authCtx = withAdmin(ctx, t.admin)
			}
			req.Token = t.secrets[(offset+i)%len(t.secrets)]
			resp, err := client.IntrospectToken(authCtx, req)
			if err != nil {
				return err
			}
			if !resp.GetActive() || !resp.GetAllowed() {
				return errInactive
			}
			return nil
		}
	}}
	health = probe{name: "gRPC health Check", newWorker: func(w int) func(context.Context, int) error {
		client := healthpb.NewHealthClient(conns[w%len(conns)])
		req := &healthpb.HealthCheckRequest{}
		return func(ctx context.Context, _ int) error {
			resp, err := client.Check(ctx, req)
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("health: %v", resp.GetStatus())
			}
			return nil
		}
	}}
	return introspect, health
}

// restProbes returns POST /v1/tokens:introspect and GET /healthz over one
// HTTP client of at most `conns` connections.
func restProbes(t *target, client *http.Client) (introspect, health probe) {
	base := "http://" + t.httpAddr
	bodies := make([][]byte, len(t.secrets))
	for i, s := range t.secrets { // secrets are base62: nothing to escape
		bodies[i] = []byte(`{"token":"` + s + `","actions":["` + benchAction + `"]}`)
	}
	auth := "Bearer " + t.admin
	introspect = probe{name: "REST introspect", newWorker: func(w int) func(context.Context, int) error {
		offset := w * 7919
		return func(ctx context.Context, i int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tokens:introspect", bytes.NewReader(bodies[(offset+i)%len(bodies)]))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			body, err := do(client, req)
			if err != nil {
				return err
			}
			// The first answer of each worker is decoded and checked in
			// full; later ones only by status, to keep the client cheap.
			if i == 0 {
				var resp tokendv1.IntrospectTokenResponse
				if err := protojson.Unmarshal(body, &resp); err != nil {
					return fmt.Errorf("introspect answer: %w", err)
				}
				if !resp.GetActive() || !resp.GetAllowed() {
					return errInactive
				}
			}
			return nil
		}
	}}
	health = probe{name: "REST /healthz", newWorker: func(int) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
			if err != nil {
				return err
			}
			_, err = do(client, req)
			return err
		}
	}}
	return introspect, health
}

// benchRoutes is the forward-auth route table of in-process servers: the
// probe's path needs the action every introspection asks about.
const benchRoutes = "routes:\n  - {method: GET, path: \"/bench/{id}\", actions: [" + benchAction + "]}\n"

// forwardAuthProbe returns GET /v1/auth as Caddy sends it, for a read of
// /bench/{id} with each secret in turn.
func forwardAuthProbe(t *target, client *http.Client) probe {
	url := "http://" + t.httpAddr + "/v1/auth"
	proxy := "Bearer " + t.admin
	return probe{name: "REST /v1/auth", newWorker: func(w int) func(context.Context, int) error {
		offset := w * 7919
		return func(ctx context.Context, i int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			req.Header.Set("X-Tokend-Authorization", proxy)
			req.Header.Set("X-Forwarded-Method", http.MethodGet)
			req.Header.Set("X-Forwarded-Uri", "/bench/"+strconv.Itoa(i))
			req.Header.Set("Authorization", "Bearer "+t.secrets[(offset+i)%len(t.secrets)])
			// do answers an error for anything but 200: a token refused
			// counts as a failed call.
			_, err = do(client, req)
			return err
		}
	}}
}

// peerProbe returns GET url with client, for another service's route; any
// 2xx answer is a success (Strapi's /_health answers 204).
func peerProbe(name, url string, client *http.Client) probe {
	return probe{name: name, newWorker: func(int) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return nil
		}
	}}
}

// do sends req and returns the body of a 200 answer.
func do(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %.200s", req.Method, req.URL.Path, resp.Status, body)
	}
	return body, nil
}

func newHTTPClient(conns int) (*http.Client, func()) {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: callTimeout}, tr.CloseIdleConnections
}

// pair is an introspection probe and the baseline it is compared with,
// and the least ratio of their throughputs the issue asks for.
type pair struct {
	introspect, baseline probe
	goal                 float64
}

// runLoad seeds a server, measures every pair in interleaved rounds, then
// the create throughput, and prints the figures.
func runLoad(ctx context.Context, cfg config, out io.Writer) (err error) {
	dir, cleanup, err := workDir(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	t, err := openTarget(ctx, cfg, dir, out)
	if t != nil {
		defer func() { err = errors.Join(err, t.close(ctx)) }()
	}
	if err != nil {
		return err
	}
	conns, closeConns, err := dialGRPC(t.grpcAddr, cfg.conns)
	if err != nil {
		return err
	}
	defer closeConns()
	httpClient, closeHTTP := newHTTPClient(cfg.conns)
	defer closeHTTP()
	gi, gh := grpcProbes(t, conns)
	ri, rh := restProbes(t, httpClient)
	pairs := []pair{{gi, gh, 0.9}, {ri, rh, 0.8}}
	if !cfg.remote() {
		// /v1/auth needs the route table only in-process servers get. Its
		// /healthz is measured again, beside it in each round.
		healthz := rh
		healthz.name = "REST /healthz (auth)"
		pairs = append(pairs, pair{forwardAuthProbe(t, httpClient), healthz, 0.8})
	}
	if cfg.peerURL != "" {
		// Each introspection is measured again beside the peer, as beside
		// its baseline, under names of their own: every ratio divides two
		// figures of the same round. The goals are tokend's against
		// Strapi's cheapest route.
		gp, rp := gi, ri
		gp.name, rp.name = gi.name+" (peer round)", ri.name+" (peer round)"
		pairs = append(pairs,
			pair{gp, peerProbe("peer, beside gRPC", cfg.peerURL, httpClient), 30},
			pair{rp, peerProbe("peer, beside REST", cfg.peerURL, httpClient), 20})
	}

	fmt.Fprintf(out, "\nmachine: %d CPUs, GOMAXPROCS %d, %s, load average %s; client and server in %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), loadAverage(), where(cfg))
	fmt.Fprintf(out, "load: %d connections per transport, %d workers, %d rounds × %v per call, %d secrets presented in turn\n",
		cfg.conns, cfg.concurrency, cfg.rounds, cfg.duration, len(t.secrets))

	loadStart := time.Now()
	writesBefore := diskWrites()
	for _, p := range pairs {
		for _, pr := range []probe{p.introspect, p.baseline} {
			if r := measure(ctx, pr, cfg.concurrency, cfg.warmup); r.errors > 0 {
				return fmt.Errorf("warm-up of %s: %d errors, first: %w", pr.name, r.errors, r.firstErr)
			}
		}
	}
	results := make(map[string][]result)
	for round := range cfg.rounds {
		for _, p := range pairs {
			order := []probe{p.introspect, p.baseline}
			if round%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, pr := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				stopProfile, err := startCPUProfile(cfg.cpuProfile, fmt.Sprintf("%s-%d", pr.slug(), round+1))
				if err != nil {
					return err
				}
				r := measure(ctx, pr, cfg.concurrency, cfg.duration)
				results[pr.name] = append(results[pr.name], r)
				if cfg.verbose {
					fmt.Fprintf(out, "round %d %-34s %8.0f req/s  p50 %-9v p99 %-9v cpu %3.0f%% %5.1fµs/call  errors %d\n", round+1, pr.name,
						r.throughput(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), 100*r.cpuShare(), 1e6*r.cpuPerCall(), r.errors)
				}
				if err := stopProfile(); err != nil {
					return err
				}
			}
		}
	}
	written := diskWrites() - writesBefore
	failed := printLoad(out, pairs, results, cfg.remote())
	introspections := 0
	for _, name := range []string{gi.name, ri.name} {
		for _, r := range results[name] {
			introspections += r.calls
		}
	}
	if !cfg.remote() {
		fmt.Fprintf(out, "\ndisk writes of this process during the rounds: %d KiB for %d introspections (last-used times are flushed once per interval)\n",
			written>>10, introspections)
	}
	if err := writeHeapProfile(cfg.memProfile); err != nil {
		return err
	}

	if cfg.creates > 0 {
		fmt.Fprintln(out)
		for _, c := range []int{1, cfg.concurrency} {
			r, ids, err := measureCreates(ctx, t, cfg.creates, c)
			t.created = append(t.created, ids...)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "CreateToken, %2d workers: %8.0f calls/s   p50 %-9v p99 %-9v (%d calls)\n",
				c, r.throughput(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.calls)
		}
	}
	if t.srv != nil {
		// Stop the server now, gracefully, and look in its store for the
		// last-use times of the tokens the load presented.
		if err := t.close(ctx); err != nil {
			return err
		}
		var store storage.Store
		if t.etcd != nil {
			store, err = etcd.Open(ctx, *t.etcd)
		} else {
			store, err = bolt.Open(filepath.Join(layout{dir}.dataDir("data"), bolt.FileName), bolt.Options{})
		}
		if err != nil {
			return err
		}
		used, err := countUsedSince(ctx, store, loadStart)
		store.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "after a graceful stop, the store holds a last-used time from this run for %d tokens (%d API secrets presented, plus the admin credential)\n",
			used, len(t.secrets))
	}
	if failed {
		return errors.New("some calls failed: the figures above are not valid")
	}
	return nil
}

// countUsedSince returns how many tokens of store have a last-used time at
// or after since.
func countUsedSince(ctx context.Context, store storage.Store, since time.Time) (int, error) {
	n := 0
	q := storage.ListQuery{Limit: 1000}
	for {
		page, err := store.ListTokens(ctx, q)
		if err != nil {
			return n, err
		}
		for _, t := range page.Tokens {
			if !t.LastUsedTime.Before(since) {
				n++
			}
		}
		if page.Next == "" {
			return n, nil
		}
		q.After = page.Next
	}
}

// diskWrites returns the bytes this process has caused to be written to
// storage (/proc/self/io write_bytes), or 0 when unknown.
func diskWrites() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func where(cfg config) string {
	if cfg.remote() {
		return "separate processes"
	}
	return "one process"
}

// printLoad prints the table of medians and the ratios, and reports
// whether any call failed.
func printLoad(out io.Writer, pairs []pair, results map[string][]result, remote bool) (failed bool) {
	fmt.Fprintf(out, "\n%-34s %12s %10s %10s %6s %9s %8s\n", "call", "req/s", "p50", "p99", "cpu", "cpu/call", "errors")
	for _, p := range pairs {
		for _, pr := range []probe{p.introspect, p.baseline} {
			rs := results[pr.name]
			errs := 0
			for _, r := range rs {
				errs += r.errors
				if r.firstErr != nil && !failed {
					fmt.Fprintf(out, "first error of %s: %v\n", pr.name, r.firstErr)
					failed = true
				}
			}
			fmt.Fprintf(out, "%-34s %12.0f %10v %10v %5.0f%% %7.1fµs %8d\n", pr.name,
				median(rs, result.throughput),
				time.Duration(median(rs, func(r result) float64 { return float64(r.p50) })).Round(time.Microsecond),
				time.Duration(median(rs, func(r result) float64 { return float64(r.p99) })).Round(time.Microsecond),
				100*median(rs, result.cpuShare), 1e6*median(rs, result.cpuPerCall), errs)
		}
	}
	fmt.Fprintln(out, "(medians over rounds; latency is per call as the client sees it, queueing included;")
	who := "client and server"
	if remote {
		who = "the client only"
	}
	fmt.Fprintf(out, " cpu is this process's CPU use, %s, out of %d%% available; cpu/call is that CPU time per call;\n", who, 100*runtime.NumCPU())
	fmt.Fprintln(out, " for a peer, another process, it is the client's alone)")
	fmt.Fprintln(out)
	for _, p := range pairs {
		in, base := results[p.introspect.name], results[p.baseline.name]
		ratios := make([]float64, len(in))
		for i := range in {
			ratios[i] = in[i].throughput() / base[i].throughput()
		}
		ratio := median(in, result.throughput) / median(base, result.throughput)
		verdict := "met"
		if ratio < p.goal {
			verdict = fmt.Sprintf("MISSED by %.0f%%", (p.goal-ratio)/p.goal*100)
		}
		cpuRatio := median(base, result.cpuPerCall) / median(in, result.cpuPerCall)
		fmt.Fprintf(out, "%s / %s throughput: %.2f (goal ≥ %.1f: %s); per round: %s; inverse CPU-per-call ratio: %.2f\n",
			p.introspect.name, p.baseline.name, ratio, p.goal, verdict, formatRatios(ratios), cpuRatio)
	}
	return failed
}

// median returns the median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func formatRatios(v []float64) string {
	var b bytes.Buffer
	for i, r := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.2f", r)
	}
	return b.String()
}

// measureCreates makes n CreateToken calls with `concurrency` workers and
// returns their throughput and latency, and the ids created.
func measureCreates(ctx context.Context, t *target, n, concurrency int) (result, []string, error) {
	begin := time.Now()
	var mu sync.Mutex
	var latencies []time.Duration
	client, closeConn, err := tokenClient(t)
	if err != nil {
		return result{}, nil, err
	}
	defer closeConn()
	actx := withAdmin(ctx, t.admin)
	ids := make([]string, n)
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += concurrency {
				start := time.Now()
				resp, err := client.CreateToken(actx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
					Name: fmt.Sprintf("bench %s create c%d %d", runID, concurrency, i),
				}})
				took := time.Since(start)
				if err != nil {
					errs[w] = err
					return
				}
				ids[i] = resp.GetToken().GetId()
				mu.Lock()
				latencies = append(latencies, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r := result{elapsed: time.Since(begin), calls: len(latencies)}
	slices.Sort(latencies)
	r.p50, r.p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
	return r, compact(ids), errors.Join(errs...)
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage returns the machine's 1, 5 and 15 minute load averages, which
// say how much other work shared the cores.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

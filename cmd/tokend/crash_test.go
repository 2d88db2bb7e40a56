package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage/bolt"
)

// TestCrashDurability runs the real binary on one data dir through
// TOKEND_CRASH_CYCLES (default 20) crash cycles. In each, a few workers
// drive concurrent creates, updates, regenerates and deletes over gRPC while
// the process is killed with SIGKILL at a random moment; then the file the
// crash left is checked (bbolt's check and tokend's index consistency), and
// the restarted process must hold every acknowledged write and no
// acknowledged delete. A write without an answer when the process died may
// have happened or not, but nothing in between. The state carries over from
// cycle to cycle, so every restart checks the writes of all earlier cycles.
// TOKEND_CRASH_SEED replays the random choices of a failed run (the
// interleaving of the workers is up to the scheduler).
//
// Killing a process leaves the page cache alone, so this tests what a crash
// of tokend can lose, not what a power cut can: that would need fsync
// checks below the file system.
func TestCrashDurability(t *testing.T) {
	cycles := 20
	if v := os.Getenv("TOKEND_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TOKEND_CRASH_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TOKEND_CRASH_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TOKEND_CRASH_SEED=%q: want a number", v)
		}
		seed = n
	}
	t.Logf("%d cycles, seed %d (rerun with TOKEND_CRASH_SEED=%d)", cycles, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	rootFile := filepath.Join(dir, "root")
	dbFile := filepath.Join(dataDir, "tokend.db")
	// A short flush interval keeps last-used writes (from the admin
	// credential) racing with the kill too.
	args := []string{"serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", dataDir, "-root-token-file", rootFile, "-flush-interval", "20ms"}
	env := tokendEnv()

	m := &crashModel{tokens: map[string]*crashToken{}, deleted: map[string]bool{}, fixed: map[string]bool{}}
	var total crashStats
	begin := time.Now()
	for cycle := 0; cycle < cycles && !t.Failed(); cycle++ {
		cycleStart := time.Now()
		p := startTokend(t, env, args...)
		c := dialCrash(t, p, rootFile)
		if cycle == 0 {
			// The bootstrap tokens are not the workers' business.
			for id := range c.list(t) {
				m.fixed[id] = true
			}
		} else {
			m.verify(t, c, fmt.Sprintf("restart after crash %d", cycle), rng)
		}

		killAfter := 20*time.Millisecond + time.Duration(rng.Int64N(int64(580*time.Millisecond)))
		stats := m.crash(t, c, p, cycle, rng.Uint64(), killAfter)
		c.conn.Close()
		total.add(stats)
		// The file exactly as the crash left it, before tokend reopens it.
		checkConsistency(t, dbFile, fmt.Sprintf("after crash %d", cycle+1))
		t.Logf("cycle %2d: killed after %3dms: %s; %d tokens tracked, %.2fs",
			cycle+1, killAfter.Milliseconds(), stats, len(m.tokens), time.Since(cycleStart).Seconds())
	}
	if t.Failed() {
		return
	}

	// Last restart: check everything once more, stop gracefully and check
	// the file again.
	p := startTokend(t, env, args...)
	c := dialCrash(t, p, rootFile)
	m.verify(t, c, fmt.Sprintf("restart after crash %d", cycles), rng)
	m.verifyAllDead(t, c)
	c.conn.Close()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	checkConsistency(t, dbFile, "after the graceful stop")
	t.Logf("survived %d crashes in %.1fs: %s (restarts showed %d of the unanswered writes done, %d not done); %d tokens and %d dead secrets checked at the end",
		cycles, time.Since(begin).Seconds(), total, m.happened, m.didNot, len(m.tokens), len(m.checkedDead))
}

// checkConsistency opens the database file as tokend does and runs the
// store's consistency check: bbolt's own, plus the token, name, hash,
// create-time and audit indexes.
func checkConsistency(t *testing.T, path, when string) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("%s: open %s: %v", when, path, err)
	}
	defer st.Close()
	if err := st.CheckConsistency(); err != nil {
		t.Errorf("%s: %v", when, err)
	}
}

// crashClient is a gRPC client of one tokend process, authenticated as root.
type crashClient struct {
	conn   *grpc.ClientConn
	client tokendv1.TokenServiceClient
	ctx    context.Context // carries the root credential
}

func dialCrash(t *testing.T, p *proc, rootFile string) *crashClient {
	t.Helper()
	data, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatalf("root token file: %v", err)
	}
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return &crashClient{
		conn:   conn,
		client: tokendv1.NewTokenServiceClient(conn),
		ctx:    metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+strings.TrimSpace(string(data))),
	}
}

// list returns every token by id.
func (c *crashClient) list(t *testing.T) map[string]*tokendv1.Token {
	t.Helper()
	out := map[string]*tokendv1.Token{}
	req := &tokendv1.ListTokensRequest{PageSize: 1000}
	for page := 0; ; page++ {
		if page == 100 {
			t.Fatalf("ListTokens: more than 100 pages")
		}
		resp, err := c.client.ListTokens(c.ctx, req)
		if err != nil {
			t.Fatalf("ListTokens: %v", err)
		}
		for _, tok := range resp.GetTokens() {
			out[tok.GetId()] = tok
		}
		if resp.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// introspect reports whether secret is active, and for which token id.
func (c *crashClient) introspect(t *testing.T, secret string) (active bool, id string, reason tokendv1.InactiveReason) {
	t.Helper()
	resp, err := c.client.IntrospectToken(c.ctx, &tokendv1.IntrospectTokenRequest{Token: secret})
	if err != nil {
		t.Fatalf("IntrospectToken: %v", err)
	}
	return resp.GetActive(), resp.GetToken().GetId(), resp.GetInactiveReason()
}

// crashToken is what the test knows of one token: its acknowledged state and,
// if the process died before answering, the write that may or may not have
// happened. A worker owns its tokens during a cycle, so a token has at most
// one write in flight.
type crashToken struct {
	id, name, description string
	hint                  string // secret hint of the acknowledged secret
	// secret is the acknowledged secret; "" when unknown (created or
	// regenerated by a write that was not answered).
	secret  string
	pending *crashOp
}

type crashOp struct {
	kind              string // "update", "regenerate" or "delete"
	name, description string // an update's values
}

// crashModel is the state every restart is checked against.
type crashModel struct {
	tokens map[string]*crashToken
	// pendingCreates were sent but not answered: the token may exist.
	pendingCreates []*crashToken
	deleted        map[string]bool // acknowledged deletes
	fixed          map[string]bool // the bootstrap tokens, left alone
	// dead secrets (deleted or regenerated away) not yet checked after a
	// restart; checkedDead were checked after one already.
	dead, checkedDead []string
	// Writes in flight at a crash, by what the restart showed.
	happened, didNot int
}

// crashStats counts the writes of a cycle.
type crashStats struct {
	created, updated, regenerated, deleted, introspected int // acknowledged
	inFlight                                             int // unanswered when the process died
	ops                                                  int
}

func (s *crashStats) add(o crashStats) {
	s.created += o.created
	s.updated += o.updated
	s.regenerated += o.regenerated
	s.deleted += o.deleted
	s.introspected += o.introspected
	s.inFlight += o.inFlight
	s.ops += o.ops
}

func (s crashStats) acked() int { return s.created + s.updated + s.regenerated + s.deleted }

func (s crashStats) String() string {
	return fmt.Sprintf("%d writes acknowledged (%d create, %d update, %d regenerate, %d delete), %d unanswered when killed, %d introspections",
		s.acked(), s.created, s.updated, s.regenerated, s.deleted, s.inFlight, s.introspected)
}

// crashWorkers is how many goroutines write concurrently.
const crashWorkers = 4

// crash runs the workers against p, kills p with SIGKILL after killAfter,
// waits for the workers and folds what they learnt into the model.
func (m *crashModel) crash(t *testing.T, c *crashClient, p *proc, cycle int, seed uint64, killAfter time.Duration) crashStats {
	t.Helper()
	ids := make([]string, 0, len(m.tokens))
	for id := range m.tokens {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	workers := make([]*crashWorker, crashWorkers)
	for i := range workers {
		workers[i] = &crashWorker{
			t: t, c: c, rng: rand.New(rand.NewPCG(seed, uint64(i))),
			prefix: fmt.Sprintf("crash-%d-%d-", cycle, i),
		}
	}
	for i, id := range ids {
		w := workers[i%crashWorkers]
		w.owned = append(w.owned, m.tokens[id])
	}

	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(stop, &killed)
		}()
	}
	// The timer picks the moment of the crash; it synchronises nothing.
	timer := time.NewTimer(killAfter)
	<-timer.C
	killed.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	close(stop)
	wg.Wait()
	p.wait(t)

	var stats crashStats
	for _, w := range workers {
		stats.add(w.stats)
		for _, tok := range w.owned {
			m.tokens[tok.id] = tok
		}
		for _, id := range w.deleted {
			delete(m.tokens, id)
			m.deleted[id] = true
		}
		m.pendingCreates = append(m.pendingCreates, w.pendingCreates...)
		m.dead = append(m.dead, w.dead...)
	}
	return stats
}

// crashWorker drives writes on the tokens it owns until told to stop or
// until its first error (after the kill, the server is gone).
type crashWorker struct {
	t      *testing.T
	c      *crashClient
	rng    *rand.Rand
	prefix string // of the names it creates
	seq    int

	owned          []*crashToken
	deleted        []string
	pendingCreates []*crashToken
	dead           []string
	stats          crashStats
}

// maxCrashOps bounds a worker's loop should the kill never come.
const maxCrashOps = 100_000

func (w *crashWorker) run(stop <-chan struct{}, killed *atomic.Bool) {
	for range maxCrashOps {
		select {
		case <-stop:
			return
		default:
		}
		if !w.step(killed) {
			return
		}
	}
	w.t.Errorf("worker %s: %d operations and no kill", w.prefix, maxCrashOps)
}

// step runs one operation and reports whether to go on.
func (w *crashWorker) step(killed *atomic.Bool) bool {
	ctx, cancel := context.WithTimeout(w.c.ctx, 20*time.Second)
	defer cancel()
	w.stats.ops++
	// failed records an unanswered call. Before the kill that is a bug;
	// after it, the expected fate of a call in flight.
	failed := func(what string, err error) bool {
		if !killed.Load() {
			w.t.Errorf("%s before the kill: %v", what, err)
		}
		return false
	}
	r := w.rng.IntN(100)
	switch {
	case len(w.owned) < 4 || (len(w.owned) < 12 && r < 25):
		w.seq++
		tok := &crashToken{name: fmt.Sprintf("%s%d", w.prefix, w.seq), description: w.description()}
		resp, err := w.c.client.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{
			Name: tok.name, Description: tok.description,
		}})
		if err != nil {
			w.pendingCreates = append(w.pendingCreates, tok)
			w.stats.inFlight++
			return failed("CreateToken", err)
		}
		got := resp.GetToken()
		if got.GetName() != tok.name || got.GetDescription() != tok.description || resp.GetSecret() == "" {
			w.t.Errorf("CreateToken(%q) answered %v", tok.name, got)
		}
		tok.id, tok.hint, tok.secret = got.GetId(), got.GetSecretHint(), resp.GetSecret()
		w.owned = append(w.owned, tok)
		w.stats.created++
	case r < 55:
		tok := w.owned[w.rng.IntN(len(w.owned))]
		op := &crashOp{kind: "update", name: tok.name, description: tok.description}
		var paths []string
		if w.rng.IntN(2) == 0 {
			w.seq++
			op.name = fmt.Sprintf("%s%d", w.prefix, w.seq)
			paths = append(paths, "name")
		}
		if len(paths) == 0 || w.rng.IntN(2) == 0 {
			op.description = w.description()
			paths = append(paths, "description")
		}
		resp, err := w.c.client.UpdateToken(ctx, &tokendv1.UpdateTokenRequest{
			Token:      &tokendv1.Token{Id: tok.id, Name: op.name, Description: op.description},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		})
		if err != nil {
			tok.pending = op
			w.stats.inFlight++
			return failed("UpdateToken", err)
		}
		if got := resp.GetToken(); got.GetName() != op.name || got.GetDescription() != op.description || got.GetSecretHint() != tok.hint {
			w.t.Errorf("UpdateToken(%s) answered %v", tok.id, got)
		}
		tok.name, tok.description = op.name, op.description
		w.stats.updated++
	case r < 75:
		tok := w.owned[w.rng.IntN(len(w.owned))]
		resp, err := w.c.client.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: tok.id})
		if err != nil {
			tok.pending = &crashOp{kind: "regenerate"}
			w.stats.inFlight++
			return failed("RegenerateToken", err)
		}
		if resp.GetToken().GetId() != tok.id || resp.GetSecret() == "" || resp.GetSecret() == tok.secret {
			w.t.Errorf("RegenerateToken(%s) answered %v", tok.id, resp.GetToken())
		}
		if tok.secret != "" {
			w.dead = append(w.dead, tok.secret)
		}
		tok.secret, tok.hint = resp.GetSecret(), resp.GetToken().GetSecretHint()
		w.stats.regenerated++
	case r < 90:
		i := w.rng.IntN(len(w.owned))
		tok := w.owned[i]
		if _, err := w.c.client.DeleteToken(ctx, &tokendv1.DeleteTokenRequest{Id: tok.id}); err != nil {
			tok.pending = &crashOp{kind: "delete"}
			w.stats.inFlight++
			return failed("DeleteToken", err)
		}
		w.owned = slices.Delete(w.owned, i, i+1)
		w.deleted = append(w.deleted, tok.id)
		if tok.secret != "" {
			w.dead = append(w.dead, tok.secret)
		}
		w.stats.deleted++
	default:
		// The live view agrees with the acknowledged writes, so far.
		tok := w.owned[w.rng.IntN(len(w.owned))]
		if tok.secret == "" {
			return true
		}
		resp, err := w.c.client.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: tok.secret})
		if err != nil {
			return failed("IntrospectToken", err)
		}
		if !resp.GetActive() || resp.GetToken().GetId() != tok.id || resp.GetToken().GetName() != tok.name {
			w.t.Errorf("IntrospectToken of %s (%q) while running: %v", tok.id, tok.name, resp)
		}
		w.stats.introspected++
	}
	return true
}

func (w *crashWorker) description() string {
	return fmt.Sprintf("written by %s at %d", w.prefix, w.rng.Uint32())
}

// verify checks a restarted process against the model: every acknowledged
// write present with its values, every acknowledged delete gone, each write
// in flight either fully done or not at all, no token nobody created, every
// known secret active and every replaced one dead. It then resolves the
// writes in flight to what happened.
func (m *crashModel) verify(t *testing.T, c *crashClient, when string, rng *rand.Rand) {
	t.Helper()
	listed := c.list(t)
	ids := make([]string, 0, len(m.tokens))
	for id := range m.tokens {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tok := m.tokens[id]
		got, ok := listed[id]
		delete(listed, id)
		op := tok.pending
		tok.pending = nil
		if op != nil && op.kind == "delete" && !ok {
			// The delete happened.
			m.happened++
			delete(m.tokens, id)
			m.deleted[id] = true
			if tok.secret != "" {
				m.dead = append(m.dead, tok.secret)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: token %s (%q) lost (write in flight: %v)", when, id, tok.name, op)
			delete(m.tokens, id)
			continue
		}
		acked := got.GetName() == tok.name && got.GetDescription() == tok.description
		switch {
		case op != nil && op.kind == "update" && !acked:
			if got.GetName() != op.name || got.GetDescription() != op.description {
				t.Errorf("%s: token %s is (%q, %q): neither the acknowledged (%q, %q) nor the update in flight (%q, %q)",
					when, id, got.GetName(), got.GetDescription(), tok.name, tok.description, op.name, op.description)
			}
			tok.name, tok.description = got.GetName(), got.GetDescription()
			m.happened++
		case !acked:
			t.Errorf("%s: token %s is (%q, %q), acknowledged (%q, %q)",
				when, id, got.GetName(), got.GetDescription(), tok.name, tok.description)
			tok.name, tok.description = got.GetName(), got.GetDescription()
		}
		if got.GetSecretHint() != tok.hint {
			if op == nil || op.kind != "regenerate" {
				t.Errorf("%s: token %s has secret hint %q, acknowledged %q", when, id, got.GetSecretHint(), tok.hint)
			} else {
				m.happened++
			}
			// The regeneration in flight happened: its secret was never
			// seen, and the one it replaced must be dead.
			if tok.secret != "" {
				m.dead = append(m.dead, tok.secret)
			}
			tok.secret, tok.hint = "", got.GetSecretHint()
		} else if op != nil && (op.kind != "update" || acked) {
			m.didNot++
		}
		if tok.secret != "" {
			if active, gotID, reason := c.introspect(t, tok.secret); !active || gotID != id {
				t.Errorf("%s: the acknowledged secret of %s (%q) does not introspect: active=%v id=%q reason=%v",
					when, id, tok.name, active, gotID, reason)
			}
		}
	}
	for _, tok := range m.pendingCreates {
		for id, got := range listed {
			if got.GetName() != tok.name {
				continue
			}
			// The create in flight happened; its secret was never seen.
			if got.GetDescription() != tok.description {
				t.Errorf("%s: created in flight, %s has description %q, sent %q", when, id, got.GetDescription(), tok.description)
			}
			tok.id, tok.hint = id, got.GetSecretHint()
			m.tokens[id] = tok
			delete(listed, id)
		}
		if tok.id == "" {
			m.didNot++
		} else {
			m.happened++
		}
	}
	m.pendingCreates = nil
	for id := range m.fixed {
		if _, ok := listed[id]; !ok {
			t.Errorf("%s: bootstrap token %s lost", when, id)
		}
	}
	for id, got := range listed {
		switch {
		case m.fixed[id]:
		case m.deleted[id]:
			t.Errorf("%s: token %s (%q) is back after an acknowledged delete", when, id, got.GetName())
		default:
			t.Errorf("%s: token %s (%q) nobody created", when, id, got.GetName())
		}
	}

	// Secrets that died since the last restart, and a sample of older ones.
	for _, s := range m.dead {
		checkDead(t, c, s, when)
	}
	m.checkedDead = append(m.checkedDead, m.dead...)
	m.dead = nil
	for range min(20, len(m.checkedDead)) {
		checkDead(t, c, m.checkedDead[rng.IntN(len(m.checkedDead))], when)
	}
}

// verifyAllDead checks every replaced secret of the whole run.
func (m *crashModel) verifyAllDead(t *testing.T, c *crashClient) {
	t.Helper()
	for _, s := range m.checkedDead {
		checkDead(t, c, s, "at the end")
	}
}

func checkDead(t *testing.T, c *crashClient, secret, when string) {
	t.Helper()
	if active, id, reason := c.introspect(t, secret); active || reason != tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND {
		t.Errorf("%s: a deleted or regenerated-away secret (%.8s…) introspects: active=%v id=%q reason=%v", when, secret, active, id, reason)
	}
}

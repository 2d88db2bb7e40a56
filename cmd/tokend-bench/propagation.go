package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/storage/etcd"
)

// runPropagation starts two in-process servers on one etcd prefix, two
// replicas, and measures how long a change acknowledged by the first takes
// to change the second's answers: a created token's secret turning active,
// and a regenerated token's old secret turning inactive. The second is
// polled with IntrospectToken as fast as it answers, so each figure is the
// propagation plus at most one introspection.
func runPropagation(ctx context.Context, cfg config, out io.Writer) error {
	dir, cleanup, err := workDir(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	prefix := fmt.Sprintf("/tokend-bench/%d/", time.Now().UnixNano())
	l := layout{dir}
	var replicas [2]*server.Server
	for i, name := range []string{"a", "b"} {
		store, err := etcd.Open(ctx, etcd.Config{Endpoints: strings.Split(cfg.etcdEndpoints, ","), Prefix: prefix})
		if err != nil {
			return err
		}
		scfg := l.serverConfig(name, cfg.serverLog)
		scfg.Store = store
		if replicas[i], err = server.Start(ctx, scfg); err != nil {
			return err
		}
		defer replicas[i].Shutdown(context.WithoutCancel(ctx))
	}
	admin, err := rootToken(l.serverConfig("a", cfg.serverLog))
	if err != nil {
		return err
	}
	ctx = withAdmin(ctx, admin)
	a, closeA, err := tokenClient(&target{grpcAddr: replicas[0].GRPCAddr().String()})
	if err != nil {
		return err
	}
	defer closeA()
	b, closeB, err := tokenClient(&target{grpcAddr: replicas[1].GRPCAddr().String()})
	if err != nil {
		return err
	}
	defer closeB()

	// until polls b until secret's activity is active, and returns how long
	// after since that was.
	until := func(secret string, active bool, since time.Time) (time.Duration, error) {
		for {
			resp, err := b.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: secret})
			if err != nil {
				return 0, err
			}
			if resp.GetActive() == active {
				return time.Since(since), nil
			}
			if time.Since(since) > 10*time.Second {
				return 0, errors.New("the second replica did not see the change within 10 s")
			}
		}
	}
	var created, regenerated []time.Duration
	for i := range cfg.propagation {
		resp, err := a.CreateToken(ctx, &tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: fmt.Sprintf("propagation %d", i)}})
		if err != nil {
			return err
		}
		d, err := until(resp.GetSecret(), true, time.Now())
		if err != nil {
			return err
		}
		created = append(created, d)
		old := resp.GetSecret()
		if _, err := a.RegenerateToken(ctx, &tokendv1.RegenerateTokenRequest{Id: resp.GetToken().GetId()}); err != nil {
			return err
		}
		if d, err = until(old, false, time.Now()); err != nil {
			return err
		}
		regenerated = append(regenerated, d)
	}
	fmt.Fprintf(out, "propagation between two replicas on etcd %s, %d changes each (load average %s):\n", cfg.etcdEndpoints, cfg.propagation, loadAverage())
	for _, m := range []struct {
		what string
		d    []time.Duration
	}{{"create on A → secret active on B", created}, {"regenerate on A → old secret dead on B", regenerated}} {
		slices.Sort(m.d)
		fmt.Fprintf(out, "  %-42s p50 %-9v p99 %-9v max %v\n", m.what, m.d[len(m.d)/2].Round(time.Microsecond),
			m.d[len(m.d)*99/100].Round(time.Microsecond), m.d[len(m.d)-1].Round(time.Microsecond))
	}
	return nil
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// TestMetrics drives traffic on both transports, with ids and secrets in
// play, then parses /metrics with the Prometheus text parser: every family
// tokend promises is there with its type and labels, the calls are counted
// per transport, and no label holds a secret, an id or a raw path.
func TestMetrics(t *testing.T) {
	ts := startServer(t, server.Config{FlushInterval: time.Hour})
	tok, secret := ts.createToken(t, &tokendv1.Token{Name: "metered", Lifespan: nil})
	body, _ := json.Marshal(map[string]any{"token": secret})
	mustOK(t, ts.do(t, "POST", "/v1/tokens:introspect", ts.root, string(body)))
	mustOK(t, ts.do(t, "GET", "/v1/tokens/"+tok.GetId(), ts.root, ""))
	checkError(t, ts.do(t, "GET", "/v1/tokens/"+tok.GetId(), secret, ""), http.StatusUnauthorized, codes.Unauthenticated)
	ts.do(t, "GET", "/v1/"+tok.GetId(), ts.root, "")
	ts.do(t, "GET", "/v1/tokens/"+secret, ts.root, "")
	if r := ts.do(t, "GET", "/healthz", "", ""); r.status != http.StatusOK {
		t.Fatalf("GET /healthz: %d", r.status)
	}
	if _, err := ts.client.IntrospectToken(withSecret(ts.root), &tokendv1.IntrospectTokenRequest{Token: secret}); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Service().FlushLastUsed(context.Background()); err != nil {
		t.Fatal(err)
	}

	r := ts.do(t, "GET", "/metrics", "", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, r.body)
	}

	for _, want := range []struct {
		name   string
		typ    dto.MetricType
		labels []string
	}{
		{"tokend_rpc_requests_total", dto.MetricType_COUNTER, []string{"code", "method", "transport"}},
		{"tokend_rpc_request_duration_seconds", dto.MetricType_HISTOGRAM, []string{"code", "method", "transport"}},
		{"tokend_http_requests_total", dto.MetricType_COUNTER, []string{"route", "status"}},
		{"tokend_http_request_duration_seconds", dto.MetricType_HISTOGRAM, []string{"route", "status"}},
		{"tokend_tokens", dto.MetricType_GAUGE, []string{"kind", "type"}},
		{"tokend_index_tokens", dto.MetricType_GAUGE, nil},
		{"tokend_tokens_expiring_soon", dto.MetricType_GAUGE, nil},
		{"tokend_last_used_flush_age_seconds", dto.MetricType_GAUGE, nil},
		{"tokend_damped_addresses", dto.MetricType_GAUGE, nil},
		{"go_goroutines", dto.MetricType_GAUGE, nil},
		{"process_cpu_seconds_total", dto.MetricType_COUNTER, nil},
	} {
		f := families[want.name]
		if f == nil {
			t.Errorf("no metric %s", want.name)
			continue
		}
		if f.GetType() != want.typ {
			t.Errorf("%s is a %v, want a %v", want.name, f.GetType(), want.typ)
		}
		for _, m := range f.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, want.labels) {
				t.Errorf("%s has labels %q, want %q", want.name, names, want.labels)
				break
			}
		}
	}

	for _, want := range []struct {
		family string
		labels map[string]string
		value  float64
	}{
		{"tokend_rpc_requests_total", map[string]string{"transport": "grpc", "method": "/tokend.v1.TokenService/CreateToken", "code": "OK"}, 1},
		{"tokend_rpc_requests_total", map[string]string{"transport": "grpc", "method": "/tokend.v1.TokenService/IntrospectToken", "code": "OK"}, 1},
		{"tokend_rpc_requests_total", map[string]string{"transport": "rest", "method": "/tokend.v1.TokenService/IntrospectToken", "code": "OK"}, 1},
		{"tokend_rpc_requests_total", map[string]string{"transport": "rest", "method": "/tokend.v1.TokenService/GetToken", "code": "OK"}, 1},
		{"tokend_rpc_requests_total", map[string]string{"transport": "rest", "method": "/tokend.v1.TokenService/GetToken", "code": "Unauthenticated"}, 1},
		{"tokend_http_requests_total", map[string]string{"route": "/v1/tokens/{id}", "status": "200"}, 1},
		{"tokend_http_requests_total", map[string]string{"route": "/v1/tokens:introspect", "status": "200"}, 1},
		// A route of tokend's own is named as the gateway names its own:
		// the path pattern, without the method.
		{"tokend_http_requests_total", map[string]string{"route": "/healthz", "status": "200"}, 1},
		{"tokend_tokens", map[string]string{"kind": "admin", "type": "full_access"}, 1},
		{"tokend_tokens", map[string]string{"kind": "api", "type": "read_only"}, 2},
		{"tokend_index_tokens", nil, 4},
		{"tokend_damped_addresses", nil, 0},
	} {
		if got, ok := sample(families[want.family], want.labels); !ok || got != want.value {
			t.Errorf("%s%v = %v (found: %v), want %v", want.family, want.labels, got, ok, want.value)
		}
	}
	if got, _ := sample(families["tokend_last_used_flush_age_seconds"], nil); got < 0 || got > 60 {
		t.Errorf("last flush %v s ago, just after a flush", got)
	}
	if got, _ := sample(families["tokend_tokens_expiring_soon"], nil); got != 0 {
		t.Errorf("%v tokens expiring within 7 days, want 0 (all last 30 days or more)", got)
	}
	if h := families["tokend_rpc_request_duration_seconds"]; h != nil && len(h.GetMetric()) > 0 {
		if n := h.GetMetric()[0].GetHistogram().GetSampleCount(); n == 0 {
			t.Errorf("a histogram series with no samples")
		}
	}

	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, bad := range []string{ts.root, secret, tok.GetId(), secret[:12]} {
					if strings.Contains(l.GetValue(), bad) {
						t.Errorf("%s has a label holding a secret, id or raw path: %s=%.12s…", f.GetName(), l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// sample returns the value of the series of f with exactly labels.
func sample(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

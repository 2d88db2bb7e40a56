package server_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
)

// TestOneChainForBothTransports: a REST call reaches the service through the
// same interceptor chain as a gRPC call: each logs one "rpc" line with its
// transport, method, code and caller, and the caller's client address is
// the REST client's (damping counts both transports together).
func TestOneChainForBothTransports(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: 2})
	tok, _ := ts.createToken(t, &tokendv1.Token{Name: "some token"})
	mustOK(t, ts.do(t, "GET", "/v1/tokens/"+tok.GetId(), ts.root, ""))
	if _, err := ts.client.GetToken(withSecret(ts.root), &tokendv1.GetTokenRequest{Id: tok.GetId()}); err != nil {
		t.Fatal(err)
	}
	logs := ts.logs.String()
	for _, transport := range []string{"rest", "grpc"} {
		line := regexp.MustCompile(`msg=rpc transport=` + transport + ` method=/tokend.v1.TokenService/GetToken code=OK duration=\S+ caller=\S+`)
		if !line.MatchString(logs) {
			t.Errorf("no rpc line for GetToken over %s in the log:\n%s", transport, logs)
		}
	}
	// One failure over each transport, from the same loopback address,
	// reaches the limit of two: the third is damped.
	checkError(t, ts.do(t, "GET", "/v1/tokens", "tkda_guess", ""), http.StatusUnauthorized, codes.Unauthenticated)
	if _, err := ts.client.ListTokens(withSecret("tkda_guess"), &tokendv1.ListTokensRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("second failure: %v", err)
	}
	checkError(t, ts.do(t, "GET", "/v1/tokens", "tkda_guess", ""), http.StatusTooManyRequests, codes.ResourceExhausted)
}

// TestDampedAnswersSayWhenToRetry: a damped address is told when to come
// back: 429 answers carry Retry-After (on the gateway routes and on the
// introspection fast path), gRPC answers a google.rpc.RetryInfo, both within
// the damping window.
func TestDampedAnswersSayWhenToRetry(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: 1})
	checkError(t, ts.do(t, "GET", "/v1/tokens", "tkda_guess", ""), http.StatusUnauthorized, codes.Unauthenticated)
	for _, c := range []struct{ name, method, path, body string }{
		{"Gateway", "GET", "/v1/tokens", ""},
		{"IntrospectFastPath", "POST", "/v1/tokens:introspect", `{"token":"x"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(t, c.method, c.path, "tkda_guess", c.body)
			checkError(t, r, http.StatusTooManyRequests, codes.ResourceExhausted)
			if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
				t.Errorf("Retry-After %q, want 1 to 60 seconds", r.header.Get("Retry-After"))
			}
		})
	}
	t.Run("GRPC", func(t *testing.T) {
		_, err := ts.client.ListTokens(withSecret("tkda_guess"), &tokendv1.ListTokensRequest{})
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("%v, want ResourceExhausted", err)
		}
		var delay time.Duration
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				delay = ri.GetRetryDelay().AsDuration()
			}
		}
		if delay < time.Second || delay > time.Minute {
			t.Errorf("RetryInfo delay %v (details %v), want 1 s to 1 min", delay, st.Details())
		}
	})
}

// TestRequestLogHoldsNoSecret: a secret pasted into a path never reaches the
// request log, which names the route pattern instead; and a body whose JSON
// breaks around a secret is refused without repeating it.
func TestRequestLogHoldsNoSecret(t *testing.T) {
	ts := startServer(t, server.Config{})
	_, secret := ts.createToken(t, &tokendv1.Token{Name: "pasted"})
	tok, _ := ts.createToken(t, &tokendv1.Token{Name: "target"})
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/tokens/" + secret},
		{"DELETE", "/v1/tokens/" + secret},
		{"POST", "/v1/tokens/" + secret + ":regenerate"},
		{"GET", "/v1/" + secret},
		{"GET", "/" + secret},
		{"POST", "/" + secret},
	} {
		if r := ts.do(t, c.method, c.path, ts.root, ""); r.status < 400 {
			t.Errorf("%s %s: %d", c.method, c.path[:10], r.status)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/tokens:introspect", `{"token": ` + secret + `}`},
		{"POST", "/v1/tokens", `{"name": ` + secret + `}`},
		{"PATCH", "/v1/tokens/" + tok.GetId(), `{"description": "a" ` + secret + `}`},
		{"POST", "/v1/tokens:introspect", `{"token":"x"}` + secret},
		{"POST", "/v1/tokens", `{"name":"x","type":"` + secret + `"}`},
	} {
		r := ts.do(t, c.method, c.path, ts.root, c.body)
		checkError(t, r, http.StatusBadRequest, codes.InvalidArgument)
		if strings.Contains(string(r.body), secret[len(secret)-20:]) {
			t.Errorf("%s %s: the answer repeats the secret: %s", c.method, c.path, r.body)
		}
	}
	logs := ts.logs.String()
	if strings.Contains(logs, secret[len(secret)-20:]) {
		t.Errorf("the log holds the secret:\n%s", logs)
	}
	if !strings.Contains(logs, `route=/v1/tokens/{id}`) {
		t.Errorf("the log does not name the route pattern:\n%s", logs)
	}
}

// TestRESTWatchLogsOneLine: a REST watch logs one line, the rpc line of its
// call, naming the route as every other REST call's does; the HTTP observer
// adds no second line, and counts the request under the route pattern.
func TestRESTWatchLogsOneLine(t *testing.T) {
	ts := startServer(t, server.Config{AuthFailureLimit: -1})
	checkError(t, ts.do(t, http.MethodGet, "/v1/tokens:watch", "tkda_guess", ""), http.StatusUnauthorized, codes.Unauthenticated)
	metrics := ts.do(t, http.MethodGet, "/metrics", "", "")
	ts.shutdown(t) // waits for the handlers, and so for their log lines
	var lines []string
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(l, "WatchTokens") || strings.Contains(l, "tokens:watch") {
			lines = append(lines, l)
		}
	}
	want := regexp.MustCompile(`msg=rpc transport=rest method=/tokend.v1.TokenService/WatchTokens code=Unauthenticated .* route=/v1/tokens:watch$`)
	if len(lines) != 1 || !want.MatchString(lines[0]) {
		t.Errorf("log lines of the watch:\n%s\nwant one, matching %s", strings.Join(lines, "\n"), want)
	}
	if !strings.Contains(string(metrics.body), `tokend_http_requests_total{route="/v1/tokens:watch",status="401"} 1`) {
		t.Errorf("the watch is not counted under its route pattern:\n%s", metrics.body)
	}
}

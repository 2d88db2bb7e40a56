package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokend/tokend/server"
)

// rawRequest opens a connection to the server's HTTP port and writes a
// request head announcing a body of bodyLen bytes, sending none of it.
func rawRequest(t *testing.T, ts *testServer, path string, bodyLen int, header ...string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: tokend\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, bodyLen)
	for _, h := range header {
		head += h + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestTrickledBodyIsCut: a client that sends its body a byte at a time has
// its connection closed once the read timeout passes, long before it is
// done sending.
func TestTrickledBodyIsCut(t *testing.T) {
	ts := startServer(t, server.Config{HTTPReadTimeout: 300 * time.Millisecond})
	const bodyLen = 400 // at one byte per 25 ms: 10 s of trickling
	for _, path := range []string{"/v1/tokens", "/v1/tokens:introspect"} {
		t.Run(strings.TrimPrefix(path, "/v1/"), func(t *testing.T) {
			conn := rawRequest(t, ts, path, bodyLen, "Authorization: Bearer "+ts.root)
			closed := make(chan string)
			go func() {
				answer, _ := io.ReadAll(conn) // returns when the server closes
				closed <- string(answer)
			}()
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			start := time.Now()
			for sent := 0; ; sent++ {
				select {
				case answer := <-closed:
					t.Logf("closed after %d of %d bytes, %v", sent, bodyLen, time.Since(start).Round(time.Millisecond))
					if strings.HasPrefix(answer, "HTTP/1.1 2") {
						t.Fatalf("a trickled request was answered with success: %q", answer)
					}
					return
				case <-tick.C:
				}
				if sent == bodyLen {
					t.Fatal("the whole body was trickled in without the server closing the connection")
				}
				conn.Write([]byte(" ")) // fails once the server has closed: the reader reports it
			}
		})
	}
}

// TestBodyRefusedWithoutCredential: a REST request with a body but no
// well-formed credential is answered 401 before its body is read (none is
// ever sent here), and the connection is closed.
func TestBodyRefusedWithoutCredential(t *testing.T) {
	ts := startServer(t, server.Config{})
	for _, tc := range []struct {
		name, path string
		header     []string
	}{
		{"CreateNoHeader", "/v1/tokens", nil},
		{"CreateNotBearer", "/v1/tokens", []string{"Authorization: Basic dXNlcjpwYXNz"}},
		{"CreateMalformedSecret", "/v1/tokens", []string{"Authorization: Bearer tkda_not-a-secret"}},
		{"IntrospectNoHeader", "/v1/tokens:introspect", nil},
		{"IntrospectMalformedSecret", "/v1/tokens:introspect", []string{"Authorization: Bearer " + ts.root + "x"}},
		{"RegisterActionsNoHeader", "/v1/actions:register", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawRequest(t, ts, tc.path, 1<<20, tc.header...)
			// A guard against hanging forever if the server waits for the
			// body: far longer than an answer takes.
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer without sending the body: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if !resp.Close {
				t.Error("the connection is kept open for an unread body")
			}
		})
	}
}

// TestGRPCConnectionLimits: the server announces its limit on calls in
// flight per connection, and closes a connection left idle.
func TestGRPCConnectionLimits(t *testing.T) {
	ts := startServer(t, server.Config{GRPCMaxStreams: 37, GRPCMaxConnectionIdle: 200 * time.Millisecond})

	t.Run("MaxConcurrentStreams", func(t *testing.T) {
		conn, err := net.Dial("tcp", ts.srv.GRPCAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		settings, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("first frame %v, want SETTINGS", f)
		}
		if v, ok := settings.Value(http2.SettingMaxConcurrentStreams); !ok || v != 37 {
			t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want 37", v, ok)
		}
	})

	t.Run("MaxConnectionIdle", func(t *testing.T) {
		if _, err := healthpb.NewHealthClient(ts.conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for state := ts.conn.GetState(); state == connectivity.Ready; state = ts.conn.GetState() {
			if !ts.conn.WaitForStateChange(ctx, state) {
				t.Fatal("an idle connection stayed open")
			}
		}
	})
}

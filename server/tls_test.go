package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/tokend/tokend/server"
)

// TestTLSClientAuthPolicy: the client-certificate policy is the same on the
// gRPC and the HTTP port, for both policies.
func TestTLSClientAuthPolicy(t *testing.T) {
	ca := newSecCA(t, "test CA")
	certFile, keyFile, caFile := tlsFiles(t, ca)
	clientCert, clientKey := ca.issue(t, "backend", x509.ExtKeyUsageClientAuth)
	member, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	strangerCert, strangerKey := newSecCA(t, "other CA").issue(t, "stranger", x509.ExtKeyUsageClientAuth)
	stranger, err := tls.X509KeyPair(strangerCert, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	// The client presents its certificate whatever CAs the server names,
	// as a client out to get in would.
	clientTLS := func(certs []tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: ca.pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(certs) == 0 {
				return &tls.Certificate{}, nil
			}
			return &certs[0], nil
		}}
	}
	for _, tc := range []struct {
		policy string
		// whether a client with no certificate, one signed by the CA and
		// one signed by another CA gets through
		none, signed, foreign bool
	}{
		{"", false, true, false}, // a client CA alone means require
		{server.ClientAuthRequire, false, true, false},
		{server.ClientAuthVerifyIfGiven, true, true, false},
	} {
		t.Run("Policy="+tc.policy, func(t *testing.T) {
			ts := startServer(t, server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCAFile: caFile, TLSClientAuth: tc.policy})
			for _, client := range []struct {
				name  string
				certs []tls.Certificate
				want  bool
			}{
				{"NoCertificate", nil, tc.none},
				{"SignedByCA", []tls.Certificate{member}, tc.signed},
				{"SignedByAnotherCA", []tls.Certificate{stranger}, tc.foreign},
			} {
				t.Run(client.name, func(t *testing.T) {
					grpcErr := tlsList(t, ts, credentials.NewTLS(clientTLS(client.certs)))
					hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(client.certs)}}
					defer hc.CloseIdleConnections()
					code, httpErr := httpsGet(t, hc, "https://"+ts.srv.HTTPAddr().String()+"/v1/tokens", ts.root)
					if (grpcErr == nil) != client.want {
						t.Errorf("gRPC: err %v, want success %v", grpcErr, client.want)
					}
					if (httpErr == nil && code == http.StatusOK) != client.want {
						t.Errorf("REST: %d, %v; want success %v", code, httpErr, client.want)
					}
				})
			}
		})
	}
}

// TestTLSVersionsAndSuites: TLS 1.2 with an AEAD suite and TLS 1.3 are
// served, older versions and CBC or SHA-1 suites are refused, on both
// ports; HTTPS answers carry HSTS.
func TestTLSVersionsAndSuites(t *testing.T) {
	ca := newSecCA(t, "test CA")
	certFile, keyFile, _ := tlsFiles(t, ca)
	ts := startServer(t, server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	for _, tc := range []struct {
		name     string
		min, max uint16
		suites   []uint16
		want     bool
	}{
		{"TLS13", tls.VersionTLS13, tls.VersionTLS13, nil, true},
		{"TLS12GCM", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS12ChaCha", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS12CBCSHA1", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, false},
		{"TLS12CBCSHA256", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, false},
		{"TLS11", tls.VersionTLS11, tls.VersionTLS11, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, port := range []struct{ name, addr string }{
				{"HTTP", ts.srv.HTTPAddr().String()}, {"gRPC", ts.srv.GRPCAddr().String()},
			} {
				conf := &tls.Config{RootCAs: ca.pool(), MinVersion: tc.min, MaxVersion: tc.max, CipherSuites: tc.suites}
				if port.name == "gRPC" {
					conf.NextProtos = []string{"h2"}
				}
				conn, err := tls.Dial("tcp", port.addr, conf)
				if err == nil {
					conn.Close()
				}
				if (err == nil) != tc.want {
					t.Errorf("%s port: handshake error %v, want success %v", port.name, err, tc.want)
				}
			}
		})
	}

	t.Run("HSTS", func(t *testing.T) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + ts.srv.HTTPAddr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("Strict-Transport-Security = %q over TLS", got)
		}
		plain := startServer(t, server.Config{})
		r := plain.do(t, http.MethodGet, "/healthz", "", "")
		if got := r.header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("Strict-Transport-Security = %q over plain HTTP", got)
		}
	})
}

// TestPlaintextWarning: serving without TLS on an address other hosts can
// reach logs a warning naming it; loopback does not.
func TestPlaintextWarning(t *testing.T) {
	const warning = "serving plaintext on a non-loopback address"
	local := startServer(t, server.Config{})
	if strings.Contains(local.logs.String(), warning) {
		t.Errorf("warning on loopback:\n%s", local.logs.String())
	}
	open := startServer(t, server.Config{GRPCAddr: "0.0.0.0:0", HTTPAddr: "0.0.0.0:0"})
	for _, addr := range []string{open.srv.GRPCAddr().String(), open.srv.HTTPAddr().String()} {
		if !strings.Contains(open.logs.String(), warning) || !strings.Contains(open.logs.String(), "addr="+addr) {
			t.Errorf("no warning for %s:\n%s", addr, open.logs.String())
		}
	}
	ca := newSecCA(t, "test CA")
	certFile, keyFile, _ := tlsFiles(t, ca)
	secure := startServer(t, server.Config{GRPCAddr: "0.0.0.0:0", HTTPAddr: "0.0.0.0:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	if strings.Contains(secure.logs.String(), warning) {
		t.Errorf("warning with TLS:\n%s", secure.logs.String())
	}
}

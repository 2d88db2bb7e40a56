package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and localhost that is its
// own CA and serves both ends of a TLS connection, and returns the paths
// of its PEM certificate and key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "tokend test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestCLITLS: a server on loopback that speaks TLS is reached with --tls-ca
// (and a client certificate when it requires one); the loopback default of
// plain text does not reach it.
func TestCLITLS(t *testing.T) {
	cert, key := selfSigned(t)
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root.token")
	p := startTokend(t, tokendEnv(), "serve", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "data"), "-root-token-file", rootFile,
		"-tls-cert", cert, "-tls-key", key, "-tls-client-ca", cert)
	data, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	env := cliEnv(t, p, strings.TrimSpace(string(data)))

	ok(t, env, "", "token", "list", "--tls-ca", cert, "--tls-cert", cert, "--tls-key", key)
	fails(t, env, "", exitFailure, "cannot reach tokend", "token", "list")                                       // plain text
	fails(t, env, "", exitFailure, "cannot reach tokend", "token", "list", "--tls-ca", cert)                     // no client certificate
	fails(t, env, "", exitFailure, "cannot reach tokend", "token", "list", "--tls-cert", cert, "--tls-key", key) // not the system roots
	fails(t, env, "", exitUsage, "--tls-cert and --tls-key", "token", "list", "--tls-ca", cert, "--tls-cert", cert)
}

func TestIsLoopback(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:9090":           true,
		"127.1.2.3:9090":           true,
		"[::1]:9090":               true,
		"localhost:9090":           true,
		"dns:///localhost:9090":    true,
		"unix:///run/tokend.sock":  true,
		"10.0.0.5:9090":            false,
		"tokend.internal:9090":     false,
		"dns:///tokend.internal":   false,
		"localhost.evil.com:9090":  false,
		"0.0.0.0:9090":             false,
		"[2001:db8::1]:9090":       false,
		"passthrough:///127.0.0.1": true,
	} {
		if got := isLoopback(target); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestTransportChoice(t *testing.T) {
	cert, key := selfSigned(t)
	for _, tt := range []struct {
		name       string
		conn       connFlags
		plaintext  bool
		ownCA      bool // trusts --tls-ca rather than the system roots
		clientCert bool
	}{
		{"LoopbackPlain", connFlags{addr: "127.0.0.1:9090"}, true, false, false},
		{"LocalhostPlain", connFlags{addr: "localhost:9090"}, true, false, false},
		{"RemoteTLS", connFlags{addr: "tokend.internal:9090"}, false, false, false},
		{"RemotePlaintextAsked", connFlags{addr: "tokend.internal:9090", plaintext: true}, true, false, false},
		{"LoopbackWithCA", connFlags{addr: "127.0.0.1:9090", tlsCA: cert}, false, true, false},
		{"ClientCertificate", connFlags{addr: "tokend.internal:9090", tlsCert: cert, tlsKey: key}, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := (&app{conn: tt.conn}).transport()
			if err != nil {
				t.Fatal(err)
			}
			if (cfg == nil) != tt.plaintext {
				t.Fatalf("TLS config %v, want plain text %v", cfg, tt.plaintext)
			}
			if cfg == nil {
				return
			}
			if (cfg.RootCAs != nil) != tt.ownCA || (len(cfg.Certificates) > 0) != tt.clientCert {
				t.Errorf("own CA %v, client certificate %v", cfg.RootCAs != nil, len(cfg.Certificates) > 0)
			}
		})
	}
	for name, conn := range map[string]connFlags{
		"PlaintextAndTLS": {addr: "127.0.0.1:9090", plaintext: true, tlsCA: cert},
		"CertWithoutKey":  {addr: "tokend.internal:9090", tlsCert: cert},
		"KeyWithoutCert":  {addr: "tokend.internal:9090", tlsKey: key},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := (&app{conn: conn}).transport()
			var e *exitError
			if !errors.As(err, &e) || e.code != exitUsage {
				t.Errorf("transport() = %v, want a usage error", err)
			}
		})
	}
}

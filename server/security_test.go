package server_test

// Tests of the security features through the real server: hash-key
// rotation, the audit trail over REST, TLS and mutual TLS, brute-force
// damping per client address and file permissions.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/service"
	"github.com/tokend/tokend/storage/bolt"
)

// secKey returns a random 32-byte hash key and its hex form.
func secKey(t *testing.T) ([]byte, string) {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k, hex.EncodeToString(k)
}

// secWriteFile writes data to path with exactly mode perm (past the umask).
func secWriteFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func secMAC(key []byte, secret string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// introspectAs asks the server, with credential cred, about secret.
func introspectAs(t *testing.T, ts *testServer, cred, secret string) *tokendv1.IntrospectTokenResponse {
	t.Helper()
	resp, err := ts.client.IntrospectToken(withSecret(cred), &tokendv1.IntrospectTokenRequest{Token: secret})
	if err != nil {
		t.Fatalf("IntrospectToken: %v", err)
	}
	return resp
}

// TestHashKeyRotation rotates the hash key as an operator would: stop,
// put the new key first in the key file, start. Every token keeps working,
// new secrets are hashed with the new key, and once the old key is dropped
// only the tokens issued under it stop working.
func TestHashKeyRotation(t *testing.T) {
	dir := t.TempDir()
	keyA, hexA := secKey(t)
	keyB, hexB := secKey(t)
	keyFile := filepath.Join(dir, "keys")
	secWriteFile(t, keyFile, hexA+"\n", 0o600)
	cfg := server.Config{DataDir: filepath.Join(dir, "data"), HashKeyFile: keyFile, RootTokenFile: filepath.Join(dir, "root")}

	// Under key A.
	ts := startServer(t, cfg)
	rootA := ts.root
	apiA, secretA := ts.createToken(t, &tokendv1.Token{Name: "issued under A"})
	rotating, rotatingA := ts.createToken(t, &tokendv1.Token{Name: "rotated under B"})
	_, adminA := ts.createToken(t, &tokendv1.Token{Name: "admin under A", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	if !introspectAs(t, ts, rootA, secretA).GetActive() {
		t.Fatal("token inactive under the key that issued it")
	}
	ts.shutdown(t)

	// Key file "B, A": the old tokens keep working, new ones use B.
	secWriteFile(t, keyFile, "# rotated: newest first\n"+hexB+"\n\n"+hexA+"\n", 0o600)
	ts = startServer(t, cfg)
	if ts.root != rootA {
		t.Fatal("the root token file changed")
	}
	for _, secret := range []string{secretA, rotatingA} {
		if resp := introspectAs(t, ts, rootA, secret); !resp.GetActive() {
			t.Errorf("a token issued under A is inactive after the rotation: %v", resp.GetInactiveReason())
		}
	}
	if _, err := ts.client.ListTokens(withSecret(adminA), &tokendv1.ListTokensRequest{}); err != nil {
		t.Errorf("an admin credential issued under A after the rotation: %v", err)
	}
	apiB, secretB := ts.createToken(t, &tokendv1.Token{Name: "issued under B"})
	_, adminB := ts.createToken(t, &tokendv1.Token{Name: "admin under B", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS})
	regen, err := ts.client.RegenerateToken(withSecret(rootA), &tokendv1.RegenerateTokenRequest{Id: rotating.GetId(), GracePeriod: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	rotatingB := regen.GetSecret()
	// The previous secret, hashed under A, is honoured for its grace period.
	if resp := introspectAs(t, ts, adminB, rotatingA); !resp.GetActive() || !resp.GetPreviousSecret() {
		t.Errorf("previous secret issued under A during its grace period: %v", resp)
	}
	if resp := introspectAs(t, ts, adminB, rotatingB); !resp.GetActive() || resp.GetPreviousSecret() {
		t.Errorf("new secret: %v", resp)
	}
	ts.shutdown(t)

	// What is stored is the HMAC under the key that issued each secret.
	st, err := bolt.Open(filepath.Join(cfg.DataDir, "tokend.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, secret string
		key        []byte
		name       string
	}{
		{apiA.GetId(), secretA, keyA, "A"},
		{apiB.GetId(), secretB, keyB, "B"},
		{rotating.GetId(), rotatingB, keyB, "B"},
	} {
		tok, err := st.GetToken(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		if !hmac.Equal(tok.SecretHash, secMAC(c.key, c.secret)) {
			t.Errorf("token %s: the stored hash is not the HMAC of its secret under key %s", c.id, c.name)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Key file "B" alone: tokens issued under B work, those under A are
	// gone, as if unknown.
	secWriteFile(t, keyFile, hexB+"\n", 0o600)
	ts = startServer(t, cfg)
	for _, secret := range []string{secretB, rotatingB} {
		if resp := introspectAs(t, ts, adminB, secret); !resp.GetActive() {
			t.Errorf("a token issued under B with key file B: %v", resp.GetInactiveReason())
		}
	}
	for _, secret := range []string{secretA, rotatingA} {
		if resp := introspectAs(t, ts, adminB, secret); resp.GetActive() || resp.GetInactiveReason() != tokendv1.InactiveReason_INACTIVE_REASON_NOT_FOUND {
			t.Errorf("a token issued under A after dropping A = %v, want NOT_FOUND", resp)
		}
	}
	for _, cred := range []string{rootA, adminA} {
		if _, err := ts.client.ListTokens(withSecret(cred), &tokendv1.ListTokensRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("an admin credential issued under A after dropping A: %v, want Unauthenticated", err)
		}
	}
}

// TestAuditTrailOverREST: GET /v1/auditEvents lists the changes made over
// both transports, newest first, never with a secret, filtered by target,
// and only for credentials holding tokend.audit.find.
func TestAuditTrailOverREST(t *testing.T) {
	ts := startServer(t, server.Config{})
	secrets := []string{ts.root}
	tok, s1 := ts.createToken(t, &tokendv1.Token{Name: "audited"})
	secrets = append(secrets, s1)
	r := mustOK(t, ts.do(t, "POST", "/v1/tokens/"+tok.GetId()+":regenerate", ts.root, `{"gracePeriod":"3600s"}`))
	secrets = append(secrets, str(r, "secret"))
	r = mustOK(t, ts.do(t, "POST", "/v1/tokens", ts.root, `{"name":"admin","kind":"TOKEN_KIND_ADMIN","type":"TOKEN_TYPE_CUSTOM","permissions":["tokend.token.find","tokend.token.create","tokend.token.update","tokend.token.delete","tokend.token.regenerate","tokend.token.introspect","tokend.action.find","tokend.action.register","tokend.token.findOne"]}`))
	noAudit := str(r, "secret")
	secrets = append(secrets, noAudit)
	mustOK(t, ts.do(t, "PATCH", "/v1/tokens/"+tok.GetId(), ts.root, `{"description":"edited"}`))
	mustOK(t, ts.do(t, "DELETE", "/v1/tokens/"+tok.GetId(), ts.root, ""))

	raw := ts.do(t, "GET", "/v1/auditEvents", ts.root, "")
	body := mustOK(t, raw)
	for _, s := range secrets {
		if strings.Contains(string(raw.body), s) || strings.Contains(string(raw.body), s[strings.IndexByte(s, '_')+1:]) {
			t.Errorf("GET /v1/auditEvents shows a secret (%.6s…)", s)
		}
	}
	events, _ := body["auditEvents"].([]any)
	var ops []string
	for _, e := range events {
		ops = append(ops, str(e, "operation"))
	}
	want := []string{"AUDIT_OPERATION_DELETE_TOKEN", "AUDIT_OPERATION_UPDATE_TOKEN", "AUDIT_OPERATION_CREATE_TOKEN",
		"AUDIT_OPERATION_REGENERATE_TOKEN", "AUDIT_OPERATION_CREATE_TOKEN", "AUDIT_OPERATION_BOOTSTRAP"}
	if strings.Join(ops, " ") != strings.Join(want, " ") {
		t.Errorf("operations %q, want %q", ops, want)
	}
	if len(events) > 0 {
		first := events[0]
		if str(first, "targetId") != tok.GetId() || str(first, "targetName") != "audited" || str(first, "callerName") != "Root" || str(first, "callerId") == "" {
			t.Errorf("the delete event reads %v", first)
		}
	}

	filtered := mustOK(t, ts.do(t, "GET", "/v1/auditEvents?targetId="+tok.GetId()+"&pageSize=2", ts.root, ""))
	if n := len(filtered["auditEvents"].([]any)); n != 2 || str(filtered, "nextPageToken") == "" {
		t.Errorf("filtered first page: %d events, next %q; want 2 and a next page", n, str(filtered, "nextPageToken"))
	}
	next := mustOK(t, ts.do(t, "GET", "/v1/auditEvents?targetId="+tok.GetId()+"&pageSize=2&pageToken="+str(filtered, "nextPageToken"), ts.root, ""))
	if n := len(next["auditEvents"].([]any)); n != 2 || str(next, "nextPageToken") != "" {
		t.Errorf("filtered second page: %d events, next %q; want the last 2", n, str(next, "nextPageToken"))
	}

	checkError(t, ts.do(t, "GET", "/v1/auditEvents", noAudit, ""), http.StatusForbidden, codes.PermissionDenied)
	checkError(t, ts.do(t, "GET", "/v1/auditEvents", "", ""), http.StatusUnauthorized, codes.Unauthenticated)
	if _, err := ts.client.ListAuditEvents(withSecret(noAudit), &tokendv1.ListAuditEventsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC ListAuditEvents without tokend.audit.find: %v", err)
	}
}

// TestServerPrunesAuditTrail: the server deletes events older than its
// retention (here: everything recorded 8 days ago, with a 7-day retention)
// on its own, and keeps them with a negative retention.
func TestServerPrunesAuditTrail(t *testing.T) {
	for _, tt := range []struct {
		name      string
		retention time.Duration
		wantLeft  int
	}{
		{"Pruned", 7 * 24 * time.Hour, 0},
		{"KeptForever", -1, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			root, _ := seedExpiredAdmin(t, dataDir) // bootstrap and a create, 8 days ago
			ts := startServer(t, server.Config{DataDir: dataDir, AuditRetention: tt.retention})
			ts.root = root
			count := func() int {
				resp, err := ts.client.ListAuditEvents(withSecret(root), &tokendv1.ListAuditEventsRequest{PageSize: 1000})
				if err != nil {
					t.Fatal(err)
				}
				return len(resp.GetAuditEvents())
			}
			if tt.wantLeft == 0 {
				waitFor(t, "the start-up prune", func() bool { return count() == 0 })
			} else if n := count(); n != tt.wantLeft {
				t.Errorf("%d events, want %d", n, tt.wantLeft)
			}
			// A new change is recorded and kept.
			ts.createToken(t, &tokendv1.Token{Name: "after the prune"})
			if n := count(); n != tt.wantLeft+1 {
				t.Errorf("%d events after one more change, want %d", n, tt.wantLeft+1)
			}
		})
	}
}

// secCA is a certificate authority made for one test.
type secCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newSecCA(t *testing.T, name string) *secCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &secCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate for 127.0.0.1 with the given usage and
// returns its certificate and key in PEM.
func (ca *secCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (ca *secCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// tlsFiles writes a server certificate and key signed by ca, and ca's
// certificate, and returns their paths.
func tlsFiles(t *testing.T, ca *secCA) (certFile, keyFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, "tokend", x509.ExtKeyUsageServerAuth)
	certFile, keyFile, caFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt")
	secWriteFile(t, certFile, string(certPEM), 0o644)
	secWriteFile(t, keyFile, string(keyPEM), 0o600)
	secWriteFile(t, caFile, string(ca.pem), 0o644)
	return certFile, keyFile, caFile
}

// tlsList calls ListTokens over gRPC with the given transport credentials.
func tlsList(t *testing.T, ts *testServer, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(ts.srv.GRPCAddr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(withSecret(ts.root), 10*time.Second)
	defer cancel()
	_, err = tokendv1.NewTokenServiceClient(conn).ListTokens(ctx, &tokendv1.ListTokensRequest{})
	return err
}

// httpsGet sends GET url with the root credential through client.
func httpsGet(t *testing.T, client *http.Client, url, secret string) (int, error) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestTLS(t *testing.T) {
	ca := newSecCA(t, "test CA")
	certFile, keyFile, caFile := tlsFiles(t, ca)
	clientCert, clientKey := ca.issue(t, "backend", x509.ExtKeyUsageClientAuth)
	goodClient, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := newSecCA(t, "other CA")
	strangerCert, strangerKey := otherCA.issue(t, "stranger", x509.ExtKeyUsageClientAuth)
	stranger, err := tls.X509KeyPair(strangerCert, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
	defer httpsClient.CloseIdleConnections()
	grpcTLS := func(certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: ca.pool(), Certificates: certs})
	}

	t.Run("ServerTLS", func(t *testing.T) {
		ts := startServer(t, server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
		addr := ts.srv.HTTPAddr().String()
		for _, path := range []string{"/healthz", "/v1/tokens"} {
			if code, err := httpsGet(t, httpsClient, "https://"+addr+path, ts.root); err != nil || code != http.StatusOK {
				t.Errorf("https %s: %d, %v", path, code, err)
			}
		}
		// Plain HTTP to the TLS port gets no answer from the API.
		if code, err := httpsGet(t, &http.Client{Timeout: 10 * time.Second}, "http://"+addr+"/v1/tokens", ts.root); err == nil && code == http.StatusOK {
			t.Errorf("plain http to the TLS port: %d", code)
		}
		// A client that does not trust the CA refuses the server.
		if _, err := httpsGet(t, &http.Client{Timeout: 10 * time.Second}, "https://"+addr+"/healthz", ""); err == nil {
			t.Errorf("https with an untrusting client succeeded")
		}
		if err := tlsList(t, ts, grpcTLS()); err != nil {
			t.Errorf("gRPC over TLS: %v", err)
		}
		if err := tlsList(t, ts, insecure.NewCredentials()); err == nil {
			t.Errorf("plaintext gRPC to the TLS port succeeded")
		}
		// Without mutual TLS a client certificate is not needed, and one
		// from an unknown CA is not checked.
		if err := tlsList(t, ts, grpcTLS(stranger)); err != nil {
			t.Errorf("gRPC over TLS with an unrequested client certificate: %v", err)
		}
	})

	t.Run("MutualTLS", func(t *testing.T) {
		ts := startServer(t, server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCAFile: caFile})
		if err := tlsList(t, ts, grpcTLS(goodClient)); err != nil {
			t.Errorf("gRPC with a client certificate: %v", err)
		}
		if err := tlsList(t, ts, grpcTLS()); err == nil {
			t.Errorf("gRPC without a client certificate succeeded")
		} else if c := status.Code(err); c != codes.Unavailable {
			t.Logf("gRPC without a client certificate: %v", err)
		}
		if err := tlsList(t, ts, grpcTLS(stranger)); err == nil {
			t.Errorf("gRPC with a certificate from another CA succeeded")
		}
		if err := tlsList(t, ts, insecure.NewCredentials()); err == nil {
			t.Errorf("plaintext gRPC succeeded")
		}
		// The HTTP port applies the same policy (see TestTLSClientAuthPolicy).
		if code, err := httpsGet(t, httpsClient, "https://"+ts.srv.HTTPAddr().String()+"/v1/tokens", ts.root); err == nil {
			t.Errorf("https without a client certificate: %d", code)
		}
	})

	t.Run("BadConfig", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			cfg  server.Config
			want string
		}{
			{"CertWithoutKey", server.Config{TLSCertFile: certFile}, "key"},
			{"KeyWithoutCert", server.Config{TLSKeyFile: keyFile}, "certificate"},
			{"ClientCAAlone", server.Config{TLSClientCAFile: caFile}, "client CA"},
			{"MissingCert", server.Config{TLSCertFile: certFile + ".missing", TLSKeyFile: keyFile}, "TLS"},
			{"KeyOfAnotherCert", server.Config{TLSCertFile: certFile, TLSKeyFile: secWriteTemp(t, string(clientKey))}, "TLS"},
			{"ClientCANotPEM", server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCAFile: keyFile}, "client CA"},
			{"ClientAuthWithoutCA", server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientAuth: server.ClientAuthRequire}, "client CA"},
			{"UnknownClientAuth", server.Config{TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCAFile: caFile, TLSClientAuth: "maybe"}, "maybe"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
				cfg.DataDir = filepath.Join(t.TempDir(), "data")
				cfg.Logger = slog.New(slog.DiscardHandler)
				cfg.Stderr = io.Discard
				srv, err := server.Start(context.Background(), cfg)
				if err == nil {
					srv.Shutdown(context.Background())
					t.Fatal("Start accepted the configuration")
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q does not mention %q", err, tt.want)
				}
			})
		}
	})
}

// secWriteTemp writes data to a new 0600 file and returns its path.
func secWriteTemp(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	secWriteFile(t, p, data, 0o600)
	return p
}

// fromAddr returns an HTTP client and a gRPC client whose connections
// leave from the loopback address ip, so the server sees another client
// address.
func fromAddr(t *testing.T, ts *testServer, ip string) (*http.Client, tokendv1.TokenServiceClient) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	t.Cleanup(hc.CloseIdleConnections)
	conn, err := grpc.NewClient("passthrough:///"+ts.srv.GRPCAddr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hc, tokendv1.NewTokenServiceClient(conn)
}

// TestBruteForceDampingPerAddress: from one address, failed authentications
// past the default limit (20 a minute) are answered 429 / ResourceExhausted
// on both transports, whatever the guess; a valid credential from the same
// address is still served; another client address is not affected; and a
// forwarded-for header does not move a client to another address.
func TestBruteForceDampingPerAddress(t *testing.T) {
	ts := startServer(t, server.Config{})
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not a local address here: %v", err)
	} else {
		l.Close()
	}
	_, apiSecret := ts.createToken(t, &tokendv1.Token{Name: "api"})
	guesserHTTP, guesserGRPC := fromAddr(t, ts, "127.0.0.1")
	otherHTTP, otherGRPC := fromAddr(t, ts, "127.0.0.2")
	get := func(c *http.Client, secret string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.base+"/v1/tokens", nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	list := func(c tokendv1.TokenServiceClient, secret string) codes.Code {
		_, err := c.ListTokens(withSecret(secret), &tokendv1.ListTokensRequest{})
		return status.Code(err)
	}

	// 20 failures, over both transports, are answered as usual.
	for i := 0; i < service.DefaultAuthFailureLimit; i++ {
		if i%2 == 0 {
			if code := get(guesserHTTP, fmt.Sprintf("tkda_guess%d", i)); code != http.StatusUnauthorized {
				t.Fatalf("failure %d: status %d, want 401", i+1, code)
			}
		} else if code := list(guesserGRPC, apiSecret); code != codes.Unauthenticated {
			t.Fatalf("failure %d: %v, want Unauthenticated", i+1, code)
		}
	}
	// The 21st and later are refused, on both transports.
	if code := get(guesserHTTP, "tkda_guess21"); code != http.StatusTooManyRequests {
		t.Errorf("21st failure: status %d, want 429", code)
	}
	if code := list(guesserGRPC, "tkda_guess22"); code != codes.ResourceExhausted {
		t.Errorf("22nd failure: %v, want ResourceExhausted", code)
	}
	if code := get(guesserHTTP, ""); code != http.StatusTooManyRequests {
		t.Errorf("no credential from the damped address: %d, want 429", code)
	}
	if code := get(guesserHTTP, "tkda_guess", "X-Forwarded-For", "198.51.100.7", "X-Real-Ip", "198.51.100.7"); code != http.StatusTooManyRequests {
		t.Errorf("a forwarded-for header escaped the damping: status %d, want 429", code)
	}
	// The damped address is not told whether a guess was right: a right
	// one is served (backends may share the guesser's address).
	if code := get(guesserHTTP, ts.root); code != http.StatusOK {
		t.Errorf("a valid credential from the damped address: %d, want 200", code)
	}
	if code := list(guesserGRPC, ts.root); code != codes.OK {
		t.Errorf("a valid credential from the damped address over gRPC: %v", code)
	}
	// Another address is unaffected.
	if code := get(otherHTTP, "tkda_guess"); code != http.StatusUnauthorized {
		t.Errorf("another address, failed: %d, want 401", code)
	}
	if code := list(otherGRPC, "tkda_guess"); code != codes.Unauthenticated {
		t.Errorf("another address over gRPC, failed: %v, want Unauthenticated", code)
	}
	if code := get(otherHTTP, ts.root); code != http.StatusOK {
		t.Errorf("another address: %d, want 200", code)
	}
	if code := list(otherGRPC, ts.root); code != codes.OK {
		t.Errorf("another address over gRPC: %v", code)
	}
	// Introspection from the other address works too.
	resp, err := otherGRPC.IntrospectToken(withSecret(ts.root), &tokendv1.IntrospectTokenRequest{Token: apiSecret})
	if err != nil || !resp.GetActive() {
		t.Errorf("introspection from another address: %v, %v", resp, err)
	}
	var e map[string]any
	req, _ := http.NewRequest("GET", ts.base+"/v1/tokens", nil)
	req.Header.Set("Authorization", "Bearer tkda_more")
	if r, err := guesserHTTP.Do(req); err == nil {
		defer r.Body.Close()
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || e["code"] != float64(codes.ResourceExhausted) {
			t.Errorf("429 body: %v, %v; want a JSON error with code %d", e, err, codes.ResourceExhausted)
		}
	}
}

// TestFileModes: a first start creates the data directory 0700 and the
// database, hash key and root token files 0600; a key file others can read
// or write is refused with a message naming it and the fix.
func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "a", "data")
	cfg := server.Config{DataDir: dataDir, RootTokenFile: filepath.Join(dir, "root")}
	ts := startServer(t, cfg)
	for _, f := range []struct {
		path string
		want os.FileMode
	}{
		{dataDir, 0o700 | os.ModeDir},
		{filepath.Join(dataDir, "tokend.db"), 0o600},
		{filepath.Join(dataDir, "hash.key"), 0o600},
		{cfg.RootTokenFile, 0o600},
	} {
		info, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeDir); got != f.want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(f.path), got, f.want)
		}
	}
	ts.shutdown(t)

	_, hexKey := secKey(t)
	for _, perm := range []os.FileMode{0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666, 0o740} {
		t.Run(fmt.Sprintf("KeyMode%04o", perm), func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "hash.key")
			secWriteFile(t, keyFile, hexKey+"\n", perm)
			dataDir := filepath.Join(t.TempDir(), "data")
			srv, err := server.Start(context.Background(), server.Config{
				GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir, HashKeyFile: keyFile,
				Logger: slog.New(slog.DiscardHandler), Stderr: io.Discard,
			})
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatalf("Start accepted a key file with mode %04o", perm)
			}
			for _, want := range []string{keyFile, "chmod 600"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dataDir, "tokend.db")); err == nil {
				t.Errorf("a database was created although the key was refused")
			}
		})
	}
	// The same check holds on a restart with the generated key.
	if err := os.Chmod(filepath.Join(dataDir, "hash.key"), 0o640); err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir,
		Logger: slog.New(slog.DiscardHandler), Stderr: io.Discard,
	})
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("a restart accepted the generated key file made readable by the group")
	}
}

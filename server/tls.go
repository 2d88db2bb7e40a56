package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// Values of Config.TLSClientAuth.
const (
	// ClientAuthRequire refuses a client without a certificate signed by
	// the client CA; the default when a client CA is set.
	ClientAuthRequire = "require"
	// ClientAuthVerifyIfGiven lets a client without a certificate in
	// (the admin token still authenticates it), and refuses one that
	// presents a certificate the client CA did not sign.
	ClientAuthVerifyIfGiven = "verify-if-given"
)

// tlsCipherSuites are the TLS 1.2 suites accepted: ECDHE key exchange with
// an AEAD cipher only, no CBC mode and no SHA-1 MAC. TLS 1.3 suites are all
// AEAD and not configurable.
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsConfigs are the TLS settings of the two ports. They differ only in the
// protocols offered: the client-certificate policy is the same on both, or
// REST would be a way around the mutual TLS that gRPC demands.
type tlsConfigs struct {
	grpc, http *tls.Config
}

// loadTLS reads the certificate, key and optional client CA named in cfg; it
// returns nil when TLS is not configured.
func loadTLS(cfg Config) (*tlsConfigs, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		if cfg.TLSClientCAFile != "" || cfg.TLSClientAuth != "" {
			return nil, errors.New("TLS: a client CA or client auth policy needs a certificate and key too")
		}
		return nil, nil
	}
	if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
		return nil, errors.New("TLS: set both the certificate and the key file")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	base := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsCipherSuites,
	}
	switch {
	case cfg.TLSClientCAFile != "":
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS client CA %s: no PEM certificate found", cfg.TLSClientCAFile)
		}
		base.ClientCAs = pool
		switch cfg.TLSClientAuth {
		case "", ClientAuthRequire:
			base.ClientAuth = tls.RequireAndVerifyClientCert
		case ClientAuthVerifyIfGiven:
			base.ClientAuth = tls.VerifyClientCertIfGiven
		default:
			return nil, fmt.Errorf("TLS client auth %q: want %s or %s", cfg.TLSClientAuth, ClientAuthRequire, ClientAuthVerifyIfGiven)
		}
	case cfg.TLSClientAuth != "":
		return nil, fmt.Errorf("TLS client auth %q needs a client CA to verify certificates with", cfg.TLSClientAuth)
	}
	grpcConf := base.Clone()
	grpcConf.NextProtos = []string{"h2"}
	httpConf := base.Clone()
	httpConf.NextProtos = []string{"h2", "http/1.1"}
	return &tlsConfigs{grpc: grpcConf, http: httpConf}, nil
}

// hstsMaxAge is how long (seconds) a browser that reached the console over
// TLS keeps refusing plain HTTP to this host: a year.
const hstsMaxAge = "31536000"

// strictTransport tells browsers to reach this host over TLS only, so a
// network attacker cannot downgrade a later visit to plain HTTP and read the
// admin token typed into the console. Sent only when HTTP is served on TLS.
func strictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age="+hstsMaxAge)
		next.ServeHTTP(w, r)
	})
}

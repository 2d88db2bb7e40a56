package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// tlsConfigs are the TLS settings of the two ports. Mutual TLS applies to
// gRPC only: browsers reaching the console and curl users rarely hold client
// certificates, and every REST call is authenticated by its admin token
// anyway.
type tlsConfigs struct {
	grpc, http *tls.Config
}

// loadTLS reads the certificate, key and optional client CA named in cfg; it
// returns nil when TLS is not configured.
func loadTLS(cfg Config) (*tlsConfigs, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		if cfg.TLSClientCAFile != "" {
			return nil, errors.New("TLS: a client CA needs a certificate and key too")
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
	base := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	grpcConf := base.Clone()
	grpcConf.NextProtos = []string{"h2"}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS client CA %s: no PEM certificate found", cfg.TLSClientCAFile)
		}
		grpcConf.ClientCAs = pool
		grpcConf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	httpConf := base.Clone()
	httpConf.NextProtos = []string{"h2", "http/1.1"}
	return &tlsConfigs{grpc: grpcConf, http: httpConf}, nil
}

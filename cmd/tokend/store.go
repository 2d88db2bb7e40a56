package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/etcd"
)

// storeFlags choose and configure the store: the bbolt file under
// -data-dir, or etcd for several replicas.
type storeFlags struct {
	kind        string
	endpoints   string
	prefix      string
	dialTimeout time.Duration
	ca          string
	cert, key   string
}

const (
	storeBolt = "bolt"
	storeEtcd = "etcd"
)

// addStoreFlags defines the store flags on fs.
func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	f := &storeFlags{}
	fs.StringVar(&f.kind, "store", storeBolt, "`kind` of store: bolt (a file under -data-dir, one process) or etcd (shared by several replicas; needs -etcd-endpoints and -hash-key-file)")
	f.addEtcdFlags(fs)
	return f
}

// addEtcdFlags defines the flags that reach etcd.
func (f *storeFlags) addEtcdFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoints, "etcd-endpoints", "", "etcd client `URLs`, comma-separated (e.g. http://10.0.0.1:2379,http://10.0.0.2:2379)")
	fs.StringVar(&f.prefix, "etcd-prefix", etcd.DefaultPrefix, "`prefix` of every etcd key tokend uses; installations sharing an etcd need different ones")
	fs.DurationVar(&f.dialTimeout, "etcd-dial-timeout", 5*time.Second, "how long to wait for etcd at start, and for each request (`duration`)")
	fs.StringVar(&f.ca, "etcd-ca", "", "PEM CA `file` to verify etcd's certificate (https endpoints)")
	fs.StringVar(&f.cert, "etcd-cert", "", "PEM client certificate `file` presented to etcd (with -etcd-key)")
	fs.StringVar(&f.key, "etcd-key", "", "PEM private key `file` of -etcd-cert")
}

// check reports a store configuration that cannot work. hashKeyFile is
// the -hash-key-file given, if any.
func (f *storeFlags) check(hashKeyFile string) error {
	switch f.kind {
	case storeBolt:
		return nil
	case storeEtcd:
	default:
		return fmt.Errorf("-store: %q is not bolt or etcd", f.kind)
	}
	if len(f.endpointList()) == 0 {
		return errors.New("-store etcd needs -etcd-endpoints")
	}
	if hashKeyFile == "" {
		// A key generated per replica would make each replica's hashes
		// unreadable to the others.
		return errors.New("-store etcd needs -hash-key-file: every replica must use the same hash key")
	}
	return f.checkEtcd()
}

// checkEtcd reports etcd flags that cannot work together.
func (f *storeFlags) checkEtcd() error {
	if (f.cert == "") != (f.key == "") {
		return errors.New("-etcd-cert and -etcd-key go together")
	}
	if f.dialTimeout <= 0 {
		return errors.New("-etcd-dial-timeout must be positive")
	}
	return nil
}

func (f *storeFlags) endpointList() []string {
	var out []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// openEtcd connects to etcd as configured.
func (f *storeFlags) openEtcd(ctx context.Context, log *slog.Logger) (*etcd.Store, error) {
	cfg := etcd.Config{
		Endpoints: f.endpointList(), Prefix: f.prefix, DialTimeout: f.dialTimeout,
		RequestTimeout: f.dialTimeout, Logger: log,
	}
	if f.ca != "" || f.cert != "" {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return nil, fmt.Errorf("-etcd-ca: %w", err)
			}
			cfg.TLS.RootCAs = x509.NewCertPool()
			if !cfg.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-etcd-ca: no PEM certificate in %s", f.ca)
			}
		}
		if f.cert != "" {
			pair, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, fmt.Errorf("-etcd-cert/-etcd-key: %w", err)
			}
			cfg.TLS.Certificates = []tls.Certificate{pair}
		}
	}
	return etcd.Open(ctx, cfg)
}

// open returns the store to serve from: nil for bolt, which the server
// opens itself under -data-dir.
func (f *storeFlags) open(ctx context.Context, log *slog.Logger) (storage.Store, error) {
	if f.kind != storeEtcd {
		return nil, nil
	}
	s, err := f.openEtcd(ctx, log)
	if err != nil {
		return nil, err
	}
	return s, nil
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseStoreFlags(t *testing.T) {
	etcdArgs := []string{"-store", "etcd", "-etcd-endpoints", "http://a:2379, http://b:2379", "-hash-key-file", "/k"}
	t.Run("DefaultIsBolt", func(t *testing.T) {
		cfg, _, store, err := parseServeFlags(nil, env(), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if store.kind != storeBolt || cfg.MaxStaleness != 30*time.Second {
			t.Fatalf("store %q, max staleness %v; want bolt, 30s", store.kind, cfg.MaxStaleness)
		}
	})
	t.Run("Etcd", func(t *testing.T) {
		args := append(etcdArgs, "-etcd-prefix", "/p/", "-etcd-dial-timeout", "2s", "-max-staleness", "5s")
		cfg, _, store, err := parseServeFlags(args, env(), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := store.endpointList(); len(got) != 2 || got[1] != "http://b:2379" {
			t.Errorf("endpoints %q", got)
		}
		if store.prefix != "/p/" || store.dialTimeout != 2*time.Second || cfg.MaxStaleness != 5*time.Second {
			t.Errorf("prefix %q, dial timeout %v, max staleness %v", store.prefix, store.dialTimeout, cfg.MaxStaleness)
		}
	})
	t.Run("EnvTwins", func(t *testing.T) {
		_, _, store, err := parseServeFlags(nil, env(
			"TOKEND_STORE", "etcd", "TOKEND_ETCD_ENDPOINTS", "http://a:2379", "TOKEND_HASH_KEY_FILE", "/k",
			"TOKEND_ETCD_PREFIX", "/q/", "TOKEND_ETCD_CA", "/ca", "TOKEND_ETCD_CERT", "/c", "TOKEND_ETCD_KEY", "/key",
		), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if store.kind != storeEtcd || store.prefix != "/q/" || store.ca != "/ca" || store.cert != "/c" || store.key != "/key" {
			t.Errorf("env twins not applied: %+v", store)
		}
	})
	for _, tc := range []struct {
		name    string
		args    []string
		mention string
	}{
		{"UnknownStore", []string{"-store", "redis"}, "-store"},
		{"NoEndpoints", []string{"-store", "etcd", "-hash-key-file", "/k"}, "-etcd-endpoints"},
		{"NoSharedKey", []string{"-store", "etcd", "-etcd-endpoints", "http://a:2379"}, "-hash-key-file"},
		{"CertWithoutKey", append(etcdArgs, "-etcd-cert", "/c"), "-etcd-key"},
		{"ZeroDialTimeout", append(etcdArgs, "-etcd-dial-timeout", "0s"), "-etcd-dial-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parseServeFlags(tc.args, env(), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("parseServeFlags(%q) = %v, want an error naming %s", tc.args, err, tc.mention)
			}
		})
	}
}

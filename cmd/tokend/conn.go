package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokend/tokend/client"
)

// defaultAddr is where the client commands look for tokend: the gRPC port
// of a server on this machine.
const defaultAddr = "127.0.0.1:9090"

// connFlags say how the client commands reach tokend and which admin token
// they present.
type connFlags struct {
	addr      string
	tlsCA     string
	tlsCert   string
	tlsKey    string
	plaintext bool
	tokenFile string
}

// addClientFlags adds the connection and output flags to a command group
// whose commands call a server; its subcommands inherit them.
func (a *app) addClientFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&a.conn.addr, "addr", defaultAddr, "gRPC address of tokend (host:port) [TOKEND_ADDR]")
	f.StringVar(&a.conn.tlsCA, "tls-ca", "", "PEM file of the CA that signed the server's certificate (default: the system roots)")
	f.StringVar(&a.conn.tlsCert, "tls-cert", "", "PEM client certificate, for a server that requires one (with --tls-key)")
	f.StringVar(&a.conn.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.BoolVar(&a.conn.plaintext, "plaintext", false, "connect without TLS (the default only for a loopback --addr)")
	f.StringVar(&a.conn.tokenFile, "token-file", "", "file holding the admin token, mode 0600 (default: TOKEND_TOKEN, else tokend/token in the user's config directory) [TOKEND_TOKEN_FILE]")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table or json (the API's JSON, as REST returns it)")
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("table", "json"))
}

// dial checks the output and connection flags and returns a client carrying
// the admin token. It makes no call: the connection is made on the first
// one.
func (a *app) dial(cmd *cobra.Command) (*client.Client, error) {
	if a.output != "table" && a.output != "json" {
		return nil, usageErrorf("--output %q: want table or json", a.output)
	}
	if !cmd.Flags().Changed("addr") {
		if v := a.getenv("TOKEND_ADDR"); v != "" {
			a.conn.addr = v
		}
	}
	tlsConfig, err := a.transport()
	if err != nil {
		return nil, err
	}
	transport := client.WithInsecure()
	if tlsConfig != nil {
		transport = client.WithTLS(tlsConfig)
	}
	secret, err := a.adminToken(cmd)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(a.conn.addr, client.WithToken(secret), transport)
	if err != nil {
		return nil, usageErrorf("--addr %q: %v", a.conn.addr, err)
	}
	return c, nil
}

// transport chooses TLS, returning its configuration, or plain text (nil).
// Plain text only when asked for, or when the server is on this machine and
// no TLS flag is given: an admin token never crosses a network in clear text
// by default.
func (a *app) transport() (*tls.Config, error) {
	c := a.conn
	anyTLS := c.tlsCA != "" || c.tlsCert != "" || c.tlsKey != ""
	switch {
	case c.plaintext && anyTLS:
		return nil, usageErrorf("--plaintext and --tls-* flags both given")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return nil, usageErrorf("--tls-cert and --tls-key go together")
	case c.plaintext || (!anyTLS && isLoopback(c.addr)):
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", c.tlsCA)
		}
	}
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// isLoopback reports whether a gRPC target names this machine: a loopback
// IP, localhost, or a Unix socket.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") {
		return true
	}
	if _, rest, ok := strings.Cut(target, ":///"); ok { // dns:///host:port, passthrough:///…
		target = rest
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminToken finds the admin token: --token-file if given, else
// TOKEND_TOKEN, else TOKEND_TOKEN_FILE, else the file in the user's config
// directory.
func (a *app) adminToken(cmd *cobra.Command) (string, error) {
	if cmd.Flags().Changed("token-file") {
		return readTokenFile(a.conn.tokenFile)
	}
	if v := strings.TrimSpace(a.getenv("TOKEND_TOKEN")); v != "" {
		return v, nil
	}
	if v := a.getenv("TOKEND_TOKEN_FILE"); v != "" {
		return readTokenFile(v)
	}
	path, err := defaultTokenFile()
	if err != nil {
		return "", fmt.Errorf("no admin token: set TOKEND_TOKEN or pass --token-file (%v)", err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no admin token: set TOKEND_TOKEN, pass --token-file, or save it in %s (mode 0600)", path)
	}
	return readTokenFile(path)
}

// defaultTokenFile is tokend/token in the user's configuration directory.
func defaultTokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "tokend", "token"), nil
}

// readTokenFile reads an admin token from its first line. A file that others
// can read is refused: the token is a credential.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s is readable by others (mode %v): run chmod 600 on it", path, info.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return line, nil
}

// fixedCompletions completes a flag or argument from a fixed list.
func fixedCompletions(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

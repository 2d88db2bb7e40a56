package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// Client is a connection to a tokend server. Every call it makes carries the
// admin credential given with WithToken.
type Client struct {
	conn *grpc.ClientConn
	api  tokendv1.TokenServiceClient
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	secret   string
	tls      *tls.Config
	insecure bool
	extra    []grpc.DialOption
}

// WithToken sets the admin credential sent with every call, as
// "authorization: Bearer <secret>". The secret is kept in memory only.
func WithToken(secret string) Option {
	return func(o *dialOptions) { o.secret = secret }
}

// WithTLS connects over TLS with the given configuration (nil: the system
// roots and defaults).
func WithTLS(cfg *tls.Config) Option {
	return func(o *dialOptions) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls = cfg
	}
}

// WithInsecure connects without TLS. The credential then crosses the network
// in clear text: use it on loopback or inside a trusted network only.
func WithInsecure() Option {
	return func(o *dialOptions) { o.insecure = true }
}

// WithDialOptions adds gRPC dial options (interceptors, a custom dialer, …).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *dialOptions) { o.extra = append(o.extra, opts...) }
}

// Dial returns a Client for the gRPC target (for example "127.0.0.1:9090" or
// "dns:///tokend.internal:9090"). Exactly one of WithTLS and WithInsecure
// must be given: a credential is never sent in clear text by accident.
// The connection is made lazily, on the first call.
func Dial(target string, opts ...Option) (*Client, error) {
	var o dialOptions
	for _, opt := range opts {
		opt(&o)
	}
	var transport grpc.DialOption
	switch {
	case o.tls != nil && o.insecure:
		return nil, errors.New("client: WithTLS and WithInsecure both given")
	case o.tls != nil:
		transport = grpc.WithTransportCredentials(credentials.NewTLS(o.tls))
	case o.insecure:
		transport = grpc.WithTransportCredentials(insecure.NewCredentials())
	default:
		return nil, errors.New("client: say how to connect: WithTLS or WithInsecure")
	}
	dialOpts := []grpc.DialOption{transport}
	if o.secret != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerCredential{secret: o.secret, secure: !o.insecure}))
	}
	dialOpts = append(dialOpts, o.extra...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{conn: conn, api: tokendv1.NewTokenServiceClient(conn)}, nil
}

// API returns the generated TokenService client on this connection, for the
// calls Client has no method of its own for. Its calls carry the credential.
func (c *Client) API() tokendv1.TokenServiceClient { return c.api }

// Conn returns the underlying gRPC connection (for health checks, say).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// bearerCredential attaches the admin credential to every call.
type bearerCredential struct {
	secret string
	secure bool
}

func (b bearerCredential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.secret}, nil
}

// RequireTransportSecurity is false only when the caller chose WithInsecure.
func (b bearerCredential) RequireTransportSecurity() bool { return b.secure }

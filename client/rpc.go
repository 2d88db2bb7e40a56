package client

import (
	"context"

	"google.golang.org/grpc"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// Introspect asks tokend whether secret is an active API token allowed every
// one of actions. An unknown, expired or malformed secret is not an error: the
// answer says active=false and why. Errors are gRPC status errors (the
// credential was refused, tokend could not be reached, …).
func (c *Client) Introspect(ctx context.Context, secret string, actions ...string) (*tokendv1.IntrospectTokenResponse, error) {
	return c.api.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: secret, Actions: actions})
}

// Watch opens tokend's stream of token events (changes, new secrets,
// deletions, expiries, heartbeats), starting after resumeToken (the
// resume_token of the last event received; "" starts from now). When
// tokend cannot replay the events missed since and tokens changed
// meanwhile, the stream starts with a RESET event: forget everything learnt
// about tokens. The stream ends with ctx, or with an error
// when the connection or tokend fails (reconnect with the last resume
// token). Verifier does all of this for you.
func (c *Client) Watch(ctx context.Context, resumeToken string) (grpc.ServerStreamingClient[tokendv1.WatchTokensResponse], error) {
	return c.api.WatchTokens(ctx, &tokendv1.WatchTokensRequest{ResumeToken: resumeToken})
}

package client

import (
	"context"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// Introspect asks tokend whether secret is an active API token allowed every
// one of actions. An unknown, expired or malformed secret is not an error: the
// answer says active=false and why. Errors are gRPC status errors (the
// credential was refused, tokend could not be reached, …).
func (c *Client) Introspect(ctx context.Context, secret string, actions ...string) (*tokendv1.IntrospectTokenResponse, error) {
	return c.api.IntrospectToken(ctx, &tokendv1.IntrospectTokenRequest{Token: secret, Actions: actions})
}

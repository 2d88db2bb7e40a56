package service

import (
	"time"

	"context"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokend/tokend/internal/bearer"
	"github.com/tokend/tokend/storage"
)

// CallInfo carries what the service learns about a call back to the
// transport that logs it. Transports create it with WithCallInfo.
type CallInfo struct {
	// ClientAddr is the client's network address (IP without port), set
	// by the transport; failed authentications are damped per address.
	ClientAddr string
	// CallerID is the id of the admin token that authenticated, or "".
	CallerID string
}

type callInfoKey struct{}

// WithCallInfo returns a context whose calls will record into the returned
// CallInfo.
func WithCallInfo(ctx context.Context) (context.Context, *CallInfo) {
	ci := &CallInfo{}
	return context.WithValue(ctx, callInfoKey{}, ci), ci
}

// authorize authenticates the admin credential of an incoming call and
// checks that it holds action. The credential is read from the
// "authorization" metadata, which the REST gateway fills from the HTTP
// header of the same name, so both transports are checked by this one
// function. It returns Unauthenticated for a missing, malformed, unknown or
// expired credential (an API token counts as unknown) and PermissionDenied
// when the credential lacks action.
func (s *Service) authorize(ctx context.Context, action string) (*entry, error) {
	ci, _ := ctx.Value(callInfoKey{}).(*CallInfo)
	e, err := s.authenticate(ctx)
	if err != nil {
		var addr string
		if ci != nil {
			addr = ci.ClientAddr
		}
		return nil, s.failed(addr, err)
	}
	if ci != nil {
		ci.CallerID = e.meta.id
	}
	if !e.grant.allows(action) {
		return nil, status.Errorf(codes.PermissionDenied, "the credential lacks the permission %s", action)
	}
	return e, nil
}

// failed records a failed authentication from addr and returns the error
// to answer: err, or ResourceExhausted once addr is damped. Failed attempts
// are damped per client address. A valid credential is always served, even
// from a damped address: a 256-bit secret cannot be guessed anyway, and
// backends sharing an address (a NAT, a proxy) with a misbehaving client
// must not lose access because of it.
func (s *Service) failed(addr string, err error) error {
	now := s.now()
	wait := s.failures.retryAfter(addr, now)
	s.failures.fail(addr, now)
	if wait > 0 {
		return retryLater(wait)
	}
	return err
}

// retryLater is the answer to a damped address: ResourceExhausted with a
// google.rpc.RetryInfo saying how long to wait, in whole seconds (the REST
// gateway turns it into a Retry-After header).
func retryLater(wait time.Duration) error {
	secs := int64(wait.Seconds()) + 1
	st := status.Newf(codes.ResourceExhausted, "too many failed authentications from your address: retry in %d s", secs)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); err == nil {
		st = d
	}
	return st.Err()
}

// authenticate finds the admin token of the call's credential and records
// its use.
func (s *Service) authenticate(ctx context.Context) (*entry, error) {
	// ValueFromIncomingContext copies one key; FromIncomingContext would
	// copy the whole metadata map on every call.
	secret, kind, err := s.credential(metadata.ValueFromIncomingContext(ctx, "authorization"))
	if err != nil {
		return nil, err
	}
	var e *entry
	var h secretHash
	if kind == storage.KindAdmin {
		e, h = s.find(secret)
	}
	if e == nil || e.meta.kind != storage.KindAdmin {
		return nil, status.Error(codes.Unauthenticated, "invalid credential: unknown admin token")
	}
	now := s.now()
	if valid, previous := e.matches(&h, now); !valid {
		if previous {
			return nil, status.Error(codes.Unauthenticated, "invalid credential: unknown admin token")
		}
		return nil, status.Error(codes.Unauthenticated, "invalid credential: admin token expired")
	}
	e.usage.touch(now)
	return e, nil
}

// CheckCredential returns the error a call from clientAddr with these
// authorization values gets when they cannot hold an admin credential
// (Unauthenticated: none, several, not "Bearer <secret>", or a secret that
// is not well formed; ResourceExhausted once the address is damped), and nil
// otherwise. A refusal counts as a failed authentication of the address. It
// reads no store, so a transport can refuse such a call before reading its
// body.
func (s *Service) CheckCredential(clientAddr string, values []string) error {
	if _, _, err := s.credential(values); err != nil {
		return s.failed(clientAddr, err)
	}
	return nil
}

// credential returns the secret of the call's authorization values, and
// its kind, or the Unauthenticated error a call without a well-formed one
// gets.
func (s *Service) credential(values []string) (string, storage.Kind, error) {
	switch len(values) {
	case 0:
		return "", 0, status.Error(codes.Unauthenticated, "missing credential: send the header authorization: Bearer <admin token>")
	case 1:
	default:
		return "", 0, status.Error(codes.Unauthenticated, "several authorization values: send exactly one")
	}
	secret, ok := bearer.Token(values[0])
	if !ok {
		return "", 0, status.Error(codes.Unauthenticated, "malformed credential: want authorization: Bearer <admin token>")
	}
	kind, ok := s.secrets.parse(secret)
	if !ok {
		return "", 0, status.Error(codes.Unauthenticated, "malformed credential: not a tokend admin token")
	}
	return secret, kind, nil
}

func expired(t *storage.Token, now time.Time) bool {
	return !t.ExpireTime.IsZero() && !now.Before(t.ExpireTime)
}

package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokend/tokend/storage"
)

// fieldErrors collects what is wrong with a request, field by field, so one
// answer names every bad field (google.rpc.BadRequest details). It keeps the
// first maxViolations and counts the rest, so a hostile request with 10^5
// bad entries cannot make the error larger than the request.
type fieldErrors struct {
	violations []*errdetails.BadRequest_FieldViolation
	more       int
}

const maxViolations = 20

func (f *fieldErrors) add(field, format string, args ...any) {
	if len(f.violations) >= maxViolations {
		f.more++
		return
	}
	f.violations = append(f.violations, &errdetails.BadRequest_FieldViolation{
		Field:       field,
		Description: fmt.Sprintf(format, args...),
	})
}

func (f *fieldErrors) empty() bool { return len(f.violations) == 0 }

// err returns an InvalidArgument status naming every violation, or nil.
func (f *fieldErrors) err() error {
	if f.empty() {
		return nil
	}
	parts := make([]string, len(f.violations))
	for i, v := range f.violations {
		parts[i] = v.Field + ": " + v.Description
	}
	msg := "invalid request: " + strings.Join(parts, "; ")
	if f.more > 0 {
		msg += fmt.Sprintf("; and %d more", f.more)
	}
	st := status.New(codes.InvalidArgument, msg)
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: f.violations}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// invalidField is the error for one bad field.
func invalidField(field, format string, args ...any) error {
	var f fieldErrors
	f.add(field, format, args...)
	return f.err()
}

// toStatus turns an error from the store or from this package into the
// status the caller sees. This is the one place storage errors become gRPC
// codes. Unexpected errors are logged in full and reach the caller as
// Internal "internal error".
func (s *Service) toStatus(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return status.Error(codes.NotFound, "token not found")
	case errors.Is(err, storage.ErrNameTaken):
		st := status.New(codes.AlreadyExists, "name already taken")
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "token.name", Description: "another token already has this name (names are compared ignoring case and width)"},
		}}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, storage.ErrLastOwner):
		if lo := (*lastOwnerError)(nil); errors.As(err, &lo) {
			return status.Error(codes.FailedPrecondition, lo.reason())
		}
		return status.Error(codes.FailedPrecondition, "the write would leave no unlimited full-access admin token, and nobody able to administer tokend; create another such token first (offline: tokend recover-root)")
	case errors.Is(err, storage.ErrCatalogFull):
		if cf := (*storage.CatalogFullError)(nil); errors.As(err, &cf) {
			return status.Errorf(codes.FailedPrecondition,
				"the action catalog is full: it holds %d actions of at most %d, and this call would add %d new ones (the server's -max-actions sets the bound)",
				cf.Held, cf.Max, cf.Added)
		}
		return status.Error(codes.FailedPrecondition, "the action catalog is full (the server's -max-actions sets the bound)")
	case errors.Is(err, storage.ErrBadCursor):
		return invalidField("page_token", "is not a page token of this listing")
	case errors.Is(err, storage.ErrUnavailable):
		// Before the context cases: a store that timed out wraps the
		// deadline too, and the caller should hear that the store is down.
		s.log.WarnContext(ctx, "store unavailable", slog.String("op", op), slog.Any("error", err))
		return status.Error(codes.Unavailable, "store unavailable")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, storage.ErrClosed):
		return status.Error(codes.Unavailable, "shutting down")
	}
	s.log.ErrorContext(ctx, "request failed", slog.String("op", op), slog.Any("error", err))
	return status.Error(codes.Internal, "internal error")
}

package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// TestSetField: the paging fields of a List request are set by name where
// they exist (so action list follows pages once ListActions has them), and
// left alone where they do not.
func TestSetField(t *testing.T) {
	tokens := &tokendv1.ListTokensRequest{}
	if !setField(tokens, "page_token", protoreflect.ValueOfString("p2")) || !setField(tokens, "page_size", protoreflect.ValueOfInt32(7)) {
		t.Fatal("setField refused ListTokensRequest's paging fields")
	}
	if tokens.GetPageToken() != "p2" || tokens.GetPageSize() != 7 {
		t.Errorf("set %v", tokens)
	}
	if setField(tokens, "page_size", protoreflect.ValueOfString("7")) || setField(tokens, "kind", protoreflect.ValueOfInt32(1)) {
		t.Error("setField set a field of another type")
	}
	if setField(&tokendv1.ListTokensRequest{}, "no_such_field", protoreflect.ValueOfString("x")) {
		t.Error("setField set a missing field")
	}
}

func TestRow(t *testing.T) {
	var b strings.Builder
	row(&b, "a\tb", "line\nbreak", "\x1b[31mred", "")
	if got, want := b.String(), "a b\tline break\t[31mred\t-\n"; got != want {
		t.Errorf("row = %q, want %q", got, want)
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	for _, tt := range []struct {
		t    *timestamppb.Timestamp
		want string
	}{
		{nil, "never"},
		{at(7*day - time.Second), "in 6 days"},
		{at(7 * day), "in 7 days"},
		{at(day), "in 1 day"},
		{at(90 * day), "in 90 days"},
		{at(200 * day), "in 6 months"},
		{at(3 * 365 * day), "in 3 years"},
		{at(30 * time.Second), "in less than a minute"},
		{at(90 * time.Minute), "in 1 hour"},
		{at(-10 * time.Second), "just now"},
		{at(-5 * time.Minute), "5 minutes ago"},
		{at(-49 * time.Hour), "2 days ago"},
	} {
		if got := relative(tt.t, now, "never"); got != tt.want {
			t.Errorf("relative(%v) = %q, want %q", tt.t.AsTime().Sub(now), got, tt.want)
		}
	}
}

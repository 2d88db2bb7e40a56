package main

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

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

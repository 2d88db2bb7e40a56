package service

// Fuzz targets of the service's input handling. Each runs
// its seeds as a plain test under `go test`; to fuzz one, e.g. for 30 s:
//
//	go test -run='^$' -fuzz='^FuzzParseSecret$' -fuzztime=30s ./service
//	go test -run='^$' -fuzz='^FuzzActionID$' -fuzztime=30s ./service
//	go test -run='^$' -fuzz='^FuzzRequestValidation$' -fuzztime=30s ./service
//	go test -run='^$' -fuzz='^FuzzPageToken$' -fuzztime=30s ./service
//
// Seed corpora live under testdata/fuzz/<FuzzName>/ beside the f.Add seeds;
// a crasher the fuzzer finds is written there too and, once fixed, stays as
// a regression seed.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"hash/crc32"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
	"github.com/tokend/tokend/storage"
	"github.com/tokend/tokend/storage/bolt"
)

// fuzzSecretBody is the length of a secret after "<prefix>_": the random
// body and the checksum, spelled out here rather than through the
// package's constants so a change of the format fails the fuzz targets.
const fuzzSecretBody = 43 + 6

const fuzzBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// fuzzChecksum is the 6-character base62 CRC-32 of s, computed independently
// of appendChecksum.
func fuzzChecksum(s string) string {
	sum := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = fuzzBase62[sum%62]
		sum /= 62
	}
	return string(out)
}

// wellFormedSecret is the secret format parse must implement, written
// independently: "<prefix>_", 43 base62 characters, and the base62 CRC-32
// of everything before the checksum.
func wellFormedSecret(s, prefix string) bool {
	head := prefix + "_"
	if !strings.HasPrefix(s, head) || len(s) != len(head)+fuzzSecretBody {
		return false
	}
	for i := len(head); i < len(s); i++ {
		if !strings.Contains(fuzzBase62, s[i:i+1]) {
			return false
		}
	}
	return s[len(s)-6:] == fuzzChecksum(s[:len(s)-6])
}

// FuzzParseSecret: parse never panics; what it accepts is exactly what the
// format describes, of the kind its prefix names; generated secrets always
// parse, and a single-byte substitution of one never does. Custom prefixes
// are fuzzed too.
func FuzzParseSecret(f *testing.F) {
	def, err := newSecretFormat(DefaultAPIPrefix, DefaultAdminPrefix)
	if err != nil {
		f.Fatal(err)
	}
	api, _ := def.generate(storage.KindAPI)
	admin, _ := def.generate(storage.KindAdmin)
	for _, s := range []string{
		"", "tkd", "tkd_", "tkda_", "tkd__", "_", "tkdA_", "TKD_",
		api, admin, api[:len(api)-1], admin + "0", strings.ToUpper(api),
		"tkd_" + strings.Repeat("0", fuzzSecretBody),
		"tkda_" + strings.Repeat("z", fuzzSecretBody),
		"tkd_" + strings.Repeat("é", fuzzSecretBody/2),
		"tkd_" + strings.Repeat("\x00", fuzzSecretBody),
		"tkd_" + strings.Repeat("\xff", fuzzSecretBody),
		strings.Repeat("tkd_", 100),
		"tkda" + api[3:],  // an API secret with the admin prefix
		"tkd" + admin[4:], // an admin secret with the API prefix
	} {
		f.Add(s, "", "", uint(0), byte(0))
	}
	// An all-zero body with its valid checksum, and custom prefixes.
	zero := "tkd_" + strings.Repeat("0", 43)
	f.Add(zero+fuzzChecksum(zero), "", "", uint(5), byte('1'))
	f.Add("a_x", "a", "ab", uint(1), byte('_'))
	f.Add("ab_"+strings.Repeat("Q", fuzzSecretBody), "ab", "a", uint(2), byte('a'))
	f.Add("", "0123456789abcdef", "0123456789abcde", uint(60), byte(0xff))

	f.Fuzz(func(t *testing.T, s, apiPrefix, adminPrefix string, pos uint, sub byte) {
		sf := def
		if apiPrefix != "" || adminPrefix != "" {
			var err error
			if sf, err = newSecretFormat(apiPrefix, adminPrefix); err != nil {
				return
			}
		}

		kind, ok := sf.parse(s)
		apiOK, adminOK := wellFormedSecret(s, sf.apiPrefix), wellFormedSecret(s, sf.adminPrefix)
		switch {
		case ok && kind == storage.KindAPI && !apiOK,
			ok && kind == storage.KindAdmin && !adminOK,
			ok && kind != storage.KindAPI && kind != storage.KindAdmin:
			t.Fatalf("parse(%q) = %v, true: not a well-formed secret of that kind", s, kind)
		case !ok && (apiOK || adminOK):
			t.Fatalf("parse(%q) refused a well-formed secret (api %v, admin %v)", s, apiOK, adminOK)
		}
		if ok {
			// What parse accepts re-validates: from a fresh copy, and its
			// hint shows the prefix and the last 4 characters only.
			if k2, ok2 := sf.parse(string([]byte(s))); !ok2 || k2 != kind {
				t.Fatalf("parse(%q) is not stable: %v, %v then %v, %v", s, kind, ok, k2, ok2)
			}
			want := sf.prefix(kind) + "_…" + s[len(s)-4:]
			if h := hint(s); h != want {
				t.Fatalf("hint(%q) = %q, want %q", s, h, want)
			}
		}

		// Generated secrets always parse, as their kind, and any one-byte
		// substitution of them is refused.
		for _, k := range []storage.Kind{storage.KindAPI, storage.KindAdmin} {
			g, err := sf.generate(k)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := sf.parse(g); !ok || got != k {
				t.Fatalf("parse(generate(%v)) = %v, %v", k, got, ok)
			}
			if !wellFormedSecret(g, sf.prefix(k)) {
				t.Fatalf("generate(%v) = %q does not follow the format", k, g)
			}
			i := int(pos % uint(len(g)))
			if g[i] == sub {
				continue
			}
			m := g[:i] + string([]byte{sub}) + g[i+1:]
			if got, ok := sf.parse(m); ok {
				t.Fatalf("parse accepted %q (kind %v), a one-byte change at %d of a generated secret", m, got, i)
			}
		}
	})
}

// actionIDGrammar is the action id grammar, written independently of
// checkActionID: segments of letters, digits, '_', ':' and '-', separated
// by single dots, at least two of them.
var actionIDGrammar = regexp.MustCompile(`^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)+$`)

// FuzzActionID: checkActionID never panics and accepts exactly the ids of
// the grammar of at most 200 characters; an accepted id splits into a
// subject and a dot-free verb that rebuild it.
func FuzzActionID(f *testing.F) {
	for _, s := range []string{
		"", ".", "..", "a.", ".a", "a..b", "a.b", "a.b.", "a.b.c",
		"api::article.article.find", "plugin::users-permissions.user.me",
		"tokend.token.findOne", "a b.c", "a.b\x00", "a.b\n", "é.b", "a.\xff",
		"a/b.c", "a.b%2F", "a.b;c", "..%2F..%2Fetc.passwd",
		strings.Repeat("a", 199) + ".", "a." + strings.Repeat("b", 198), "a." + strings.Repeat("b", 199),
		strings.Repeat("a.", 100), strings.Repeat("a.", 99) + "a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		msg := checkActionID(id)
		valid := len(id) <= 200 && actionIDGrammar.MatchString(id)
		switch {
		case msg == "" && !valid:
			t.Fatalf("checkActionID(%q) accepted an id outside the grammar (%d bytes)", id, len(id))
		case msg != "" && valid:
			t.Fatalf("checkActionID(%q) refused a valid id: %s", id, msg)
		case msg != "":
			return
		}
		subject, verb := splitAction(id)
		if subject == "" || verb == "" || strings.Contains(verb, ".") || subject+"."+verb != id {
			t.Fatalf("splitAction(%q) = %q, %q", id, subject, verb)
		}
		if got, want := isReadVerb(id), verb == "find" || verb == "findOne"; got != want {
			t.Fatalf("isReadVerb(%q) = %v, want %v", id, got, want)
		}
	})
}

// fuzzService is a bootstrapped Service over a real bbolt file, shared by
// every input of one fuzzing process, with a few tokens and actions to aim
// at.
type fuzzService struct {
	svc  *Service
	root context.Context // incoming context carrying the root credential
	// rootID is the root token's id: requests naming it are not run, so no
	// input can delete, regenerate or demote the credential every later
	// input uses.
	rootID string
	// ids are tokens a request may name as "$0" … "$9".
	ids []string
}

func newFuzzService(tb testing.TB) *fuzzService {
	tb.Helper()
	dir := tb.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "tokend.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	svc, err := New(ctx, Config{
		Store:            store,
		HashKeys:         [][]byte{key},
		Logger:           slog.New(slog.DiscardHandler),
		AuthFailureLimit: -1,
	})
	if err != nil {
		store.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		svc.Close(ctx)
		store.Close()
	})
	root, err := svc.Bootstrap(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	fs := &fuzzService{svc: svc, root: metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+root))}
	if _, err := svc.RegisterActions(fs.root, &tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{
		{Id: "api::article.article.find"}, {Id: "api::article.article.create"}, {Id: "a.b"},
	}}); err != nil {
		tb.Fatal(err)
	}
	for i, tok := range []*tokendv1.Token{
		{Name: "fuzz api", Kind: tokendv1.TokenKind_TOKEN_KIND_API, Lifespan: durationpb.New(7 * 24 * time.Hour)},
		{Name: "fuzz custom", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"a.b"}},
		{Name: "fuzz admin", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_FULL_ACCESS},
		{Name: "fuzz admin custom", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{ActionTokenFind}},
	} {
		resp, err := svc.CreateToken(fs.root, &tokendv1.CreateTokenRequest{Token: tok})
		if err != nil {
			tb.Fatalf("create fixture %d: %v", i, err)
		}
		fs.ids = append(fs.ids, resp.GetToken().GetId())
	}
	list, err := svc.ListTokens(fs.root, &tokendv1.ListTokensRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, PageSize: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	for _, tok := range list.GetTokens() {
		if tok.GetName() == "Root" {
			fs.rootID = tok.GetId()
		}
	}
	if fs.rootID == "" {
		tb.Fatal("no root token after Bootstrap")
	}
	return fs
}

// resolve maps the placeholders "$0" … "$9" to fixture token ids, so seeds
// can reach the code behind a successful lookup; it reports false for the
// root token's id.
func (fs *fuzzService) resolve(id *string) bool {
	if len(*id) == 2 && (*id)[0] == '$' && (*id)[1] >= '0' && (*id)[1] <= '9' {
		*id = fs.ids[int((*id)[1]-'0')%len(fs.ids)]
	}
	return *id != fs.rootID
}

// fuzzCheckStatus fails unless err is nil or a clean refusal: never Internal or
// Unknown, and an InvalidArgument names its fields in BadRequest details.
func fuzzCheckStatus(t *testing.T, rpc string, req proto.Message, err error) {
	t.Helper()
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s(%v): a non-status error %v", rpc, req, err)
	}
	switch st.Code() {
	case codes.Internal, codes.Unknown:
		t.Fatalf("%s(%v) = %v", rpc, req, err)
	case codes.InvalidArgument:
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				return
			}
		}
		t.Fatalf("%s(%v) = %v: InvalidArgument without field violations", rpc, req, err)
	}
}

// FuzzRequestValidation decodes its input as the request of every RPC and
// calls the service with the root credential against a real bbolt store:
// no input may panic or get Internal/Unknown, and every InvalidArgument
// names a field. s, when not empty, is put into a string field of each
// request without any UTF-8 check, the way the REST gateway passes path and
// query parameters through.
func FuzzRequestValidation(f *testing.F) {
	fs := newFuzzService(f)

	add := func(m proto.Message, s string) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, s)
	}
	add(&tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "n", Description: "d", Kind: tokendv1.TokenKind_TOKEN_KIND_API, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"a.b", "a.b", "api::article.article.find"}, Lifespan: durationpb.New(7 * 24 * time.Hour)}}, "")
	add(&tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: " x ", Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{ActionAuditFind}}}, "")
	add(&tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Name: "k", Kind: 99, Type: -1, Lifespan: &durationpb.Duration{Seconds: -1, Nanos: 5}}}, "")
	add(&tokendv1.CreateTokenRequest{Token: &tokendv1.Token{Lifespan: &durationpb.Duration{Seconds: 1 << 62}}}, "\xff\xfe")
	add(&tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: "$0", Name: "renamed", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM, Permissions: []string{"a.b"}, Lifespan: durationpb.New(30 * 24 * time.Hour)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name", "type", "permissions", "lifespan"}}}, "")
	add(&tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: "$1", Type: tokendv1.TokenType_TOKEN_TYPE_CUSTOM}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"*", "id", "token.name", ""}}}, "")
	add(&tokendv1.UpdateTokenRequest{Token: &tokendv1.Token{Id: "$3", Type: tokendv1.TokenType_TOKEN_TYPE_READ_ONLY}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"type"}}}, "")
	add(&tokendv1.ListTokensRequest{PageSize: 2, OrderBy: "create_time desc", Kind: 1, Type: 2, ExpireBefore: timestamppb.New(time.Now().Add(time.Hour))}, "")
	add(&tokendv1.ListTokensRequest{PageSize: -1, OrderBy: "name  asc", PageToken: "bg~00000000", ExpireBefore: &timestamppb.Timestamp{Seconds: 1 << 62}}, "")
	add(&tokendv1.RegenerateTokenRequest{Id: "$0", GracePeriod: durationpb.New(time.Hour)}, "")
	add(&tokendv1.RegenerateTokenRequest{Id: "$2", GracePeriod: &durationpb.Duration{Seconds: 86401}}, "")
	add(&tokendv1.RegenerateTokenRequest{Id: "$1", GracePeriod: &durationpb.Duration{Seconds: 1, Nanos: -1}}, "")
	add(&tokendv1.IntrospectTokenRequest{Token: "tkd_" + strings.Repeat("0", fuzzSecretBody), Actions: []string{"a.b", "x", ""}}, "")
	add(&tokendv1.RegisterActionsRequest{Actions: []*tokendv1.Action{{Id: "c.d", Description: "x"}, {Id: "c.d"}, {Id: "tokend.x.y"}}}, "")
	add(&tokendv1.ListAuditEventsRequest{PageSize: 1, TargetId: "$0"}, "")
	add(&tokendv1.ListAuditEventsRequest{PageSize: 1001, PageToken: "YQAAAAAAAAAB~811c9dc5"}, "\x00")
	add(&tokendv1.GetTokenRequest{Id: "$2"}, "../..")
	f.Add([]byte{}, "a\x00b")
	f.Add([]byte{0x0a, 0x80}, "")

	f.Fuzz(func(t *testing.T, data []byte, s string) {
		ctx := fs.root

		var create tokendv1.CreateTokenRequest
		if proto.Unmarshal(data, &create) == nil {
			if s != "" {
				if create.Token == nil {
					create.Token = &tokendv1.Token{}
				}
				create.Token.Name = s
			}
			_, err := fs.svc.CreateToken(ctx, &create)
			fuzzCheckStatus(t, "CreateToken", &create, err)
		}

		var update tokendv1.UpdateTokenRequest
		if proto.Unmarshal(data, &update) == nil {
			if s != "" {
				if update.Token == nil {
					update.Token = &tokendv1.Token{}
				}
				update.Token.Description = s
			}
			if update.Token != nil && fs.resolve(&update.Token.Id) {
				_, err := fs.svc.UpdateToken(ctx, &update)
				fuzzCheckStatus(t, "UpdateToken", &update, err)
			}
		}

		var list tokendv1.ListTokensRequest
		if proto.Unmarshal(data, &list) == nil {
			if s != "" {
				list.PageToken = s
			}
			resp, err := fs.svc.ListTokens(ctx, &list)
			fuzzCheckStatus(t, "ListTokens", &list, err)
			if err == nil && len(resp.GetTokens()) > max(int(list.GetPageSize()), 50) {
				t.Fatalf("ListTokens(%v) returned %d tokens", &list, len(resp.GetTokens()))
			}
		}

		var regen tokendv1.RegenerateTokenRequest
		if proto.Unmarshal(data, &regen) == nil {
			if s != "" {
				regen.Id = s
			}
			if fs.resolve(&regen.Id) {
				_, err := fs.svc.RegenerateToken(ctx, &regen)
				fuzzCheckStatus(t, "RegenerateToken", &regen, err)
			}
		}

		var intro tokendv1.IntrospectTokenRequest
		if proto.Unmarshal(data, &intro) == nil {
			if s != "" {
				intro.Actions = append(intro.Actions, s)
			}
			resp, err := fs.svc.IntrospectToken(ctx, &intro)
			fuzzCheckStatus(t, "IntrospectToken", &intro, err)
			if err == nil && !resp.GetActive() && (resp.GetToken() != nil || resp.GetAllowed() || len(resp.GetDeniedActions()) > 0) {
				t.Fatalf("IntrospectToken(%v): inactive answer says more than why: %v", &intro, resp)
			}
		}

		var register tokendv1.RegisterActionsRequest
		if proto.Unmarshal(data, &register) == nil {
			if s != "" {
				register.Actions = append(register.Actions, &tokendv1.Action{Id: s, Description: s})
			}
			_, err := fs.svc.RegisterActions(ctx, &register)
			fuzzCheckStatus(t, "RegisterActions", &register, err)
		}

		var audit tokendv1.ListAuditEventsRequest
		if proto.Unmarshal(data, &audit) == nil {
			if s != "" {
				audit.TargetId = s
			}
			fs.resolve(&audit.TargetId)
			_, err := fs.svc.ListAuditEvents(ctx, &audit)
			fuzzCheckStatus(t, "ListAuditEvents", &audit, err)
		}

		// The RPCs the list leaves out take an id or a kind only.
		var get tokendv1.GetTokenRequest
		if proto.Unmarshal(data, &get) == nil {
			if s != "" {
				get.Id = s
			}
			fs.resolve(&get.Id)
			_, err := fs.svc.GetToken(ctx, &get)
			fuzzCheckStatus(t, "GetToken", &get, err)
		}
		var actions tokendv1.ListActionsRequest
		if proto.Unmarshal(data, &actions) == nil {
			_, err := fs.svc.ListActions(ctx, &actions)
			fuzzCheckStatus(t, "ListActions", &actions, err)
		}
	})
}

// FuzzPageToken lists tokens and audit events with arbitrary page tokens,
// orders, filters and sizes: never a panic nor Internal; a bad page token
// is an InvalidArgument naming page_token; a page is never larger than
// asked; and a next_page_token the service hands out is accepted for the
// same query.
func FuzzPageToken(f *testing.F) {
	fs := newFuzzService(f)
	ctx := fs.root
	// Real cursors: name order and audit cursors depend only on names and
	// commit order, which are the same in every fuzzing process.
	first, err := fs.svc.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 2})
	if err != nil {
		f.Fatal(err)
	}
	byCreate, err := fs.svc.ListTokens(ctx, &tokendv1.ListTokensRequest{PageSize: 1, OrderBy: "create_time desc"})
	if err != nil {
		f.Fatal(err)
	}
	events, err := fs.svc.ListAuditEvents(ctx, &tokendv1.ListAuditEventsRequest{PageSize: 2})
	if err != nil {
		f.Fatal(err)
	}
	actions, err := fs.svc.ListActions(ctx, &tokendv1.ListActionsRequest{Kind: tokendv1.TokenKind_TOKEN_KIND_ADMIN, PageSize: 2})
	if err != nil {
		f.Fatal(err)
	}
	for _, pt := range []string{
		"", first.GetNextPageToken(), byCreate.GetNextPageToken(), events.GetNextPageToken(), actions.GetNextPageToken(),
		"~", "~~", "x~", "abc", "\xff~\x00",
		base64.RawURLEncoding.EncodeToString([]byte("n")) + "~00000000",
		base64.RawURLEncoding.EncodeToString([]byte("nzzzz")) + "~" + fuzzTagOf(first.GetNextPageToken()),
		base64.RawURLEncoding.EncodeToString([]byte("a\x00\x00\x00\x00\x00\x00\x00\x01")) + "~811c9dc5",
		base64.StdEncoding.EncodeToString([]byte("a\xff\xff\xff\xff\xff\xff\xff\xff")) + "~811c9dc5",
		strings.Repeat("A", 10000) + "~811c9dc5",
	} {
		f.Add(pt, "", "", int32(0), int32(0), int32(0))
		f.Add(pt, "$0", "create_time desc", int32(1), int32(1), int32(2))
	}
	f.Add(first.GetNextPageToken(), "", "name", int32(0), int32(0), int32(2))
	f.Add("", "", "", int32(0), int32(0), int32(-1))
	f.Add("", "", "", int32(0), int32(0), int32(1<<31-1))
	f.Add("", "", "createTime desc", int32(7), int32(-3), int32(1001))

	f.Fuzz(func(t *testing.T, pageToken, targetID, orderBy string, kind, typ, size int32) {
		lreq := &tokendv1.ListTokensRequest{PageToken: pageToken, OrderBy: orderBy, Kind: tokendv1.TokenKind(kind), Type: tokendv1.TokenType(typ), PageSize: size}
		resp, err := fs.svc.ListTokens(ctx, lreq)
		fuzzCheckStatus(t, "ListTokens", lreq, err)
		if err == nil {
			fuzzCheckPage(t, "ListTokens", size, len(resp.GetTokens()))
			if next := resp.GetNextPageToken(); next != "" {
				lreq.PageToken = next
				_, err := fs.svc.ListTokens(ctx, lreq)
				if err != nil {
					t.Fatalf("ListTokens refused its own next_page_token %q: %v", next, err)
				}
			}
		}

		fs.resolve(&targetID)
		areq := &tokendv1.ListAuditEventsRequest{PageToken: pageToken, TargetId: targetID, PageSize: size}
		aresp, err := fs.svc.ListAuditEvents(ctx, areq)
		fuzzCheckStatus(t, "ListAuditEvents", areq, err)
		if err == nil {
			fuzzCheckPage(t, "ListAuditEvents", size, len(aresp.GetAuditEvents()))
			for _, ev := range aresp.GetAuditEvents() {
				if targetID != "" && ev.GetTargetId() != targetID {
					t.Fatalf("ListAuditEvents(target %q) returned an event about %q", targetID, ev.GetTargetId())
				}
			}
			if next := aresp.GetNextPageToken(); next != "" {
				areq.PageToken = next
				if _, err := fs.svc.ListAuditEvents(ctx, areq); err != nil {
					t.Fatalf("ListAuditEvents refused its own next_page_token %q: %v", next, err)
				}
			}
		}

		creq := &tokendv1.ListActionsRequest{PageToken: pageToken, Kind: tokendv1.TokenKind(kind), PageSize: size}
		cresp, err := fs.svc.ListActions(ctx, creq)
		fuzzCheckStatus(t, "ListActions", creq, err)
		if err == nil {
			fuzzCheckPage(t, "ListActions", size, len(cresp.GetActions()))
			if next := cresp.GetNextPageToken(); next != "" {
				creq.PageToken = next
				if _, err := fs.svc.ListActions(ctx, creq); err != nil {
					t.Fatalf("ListActions refused its own next_page_token %q: %v", next, err)
				}
			}
		}
	})
}

// fuzzTagOf is what follows the last '~' of a page token.
func fuzzTagOf(pageToken string) string {
	return pageToken[strings.LastIndexByte(pageToken, '~')+1:]
}

// fuzzCheckPage fails when a page holds more than the page size asked for (0
// meaning 50).
func fuzzCheckPage(t *testing.T, rpc string, size int32, n int) {
	t.Helper()
	limit := int(size)
	if size == 0 {
		limit = 50
	}
	if n > limit {
		t.Fatalf("%s(page_size %d) returned %d items", rpc, size, n)
	}
}

package authroutes_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/server/authroutes"
)

func TestShippedExample(t *testing.T) {
	table, err := authroutes.Load(filepath.Join("..", "..", "examples", "forward-auth", "routes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, uri string
		want        string // the actions of the matching rule, "public", or "" for none
	}{
		{"GET", "/api/articles", "api::article.article.find"},
		{"GET", "/api/articles?sort=title", "api::article.article.find"},
		{"HEAD", "/api/articles", "api::article.article.find"},
		{"GET", "/api/articles/42", "api::article.article.findOne"},
		{"POST", "/api/articles", "api::article.article.create"},
		{"PUT", "/api/articles/42", "api::article.article.update"},
		{"DELETE", "/api/articles/42", "api::article.article.delete"},
		{"PATCH", "/api/articles/42", ""},
		{"DELETE", "/api/articles", ""},
		{"GET", "/api/articles/42/comments", ""},
		{"GET", "/api/health", "public"},
		{"POST", "/api/health", "public"},
		{"GET", "/api/me", "(any valid token)"},
		{"GET", "/api/users", ""},
	}
	for _, c := range cases {
		t.Run(c.method+c.uri, func(t *testing.T) {
			if got := describe(table.Match(c.method, c.uri)); got != c.want {
				t.Errorf("Match(%s, %s) = %q, want %q", c.method, c.uri, got, c.want)
			}
		})
	}
}

func describe(r *authroutes.Rule) string {
	switch {
	case r == nil:
		return ""
	case r.Public:
		return "public"
	case len(r.Actions) == 0:
		return "(any valid token)"
	}
	return strings.Join(r.Actions, ",")
}

func TestPatterns(t *testing.T) {
	table, err := authroutes.Parse("t.yaml", []byte(`
routes:
  - {method: GET, path: "/files/**", actions: [a.rest]}
  - {method: get, path: "/u/{id}/posts/{post}", actions: [a.param]}
  - {method: "*", path: /, actions: [a.root]}
  - {method: GET, path: /dir/, actions: [a.slash]}
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, uri, want string
	}{
		{"RestMatchesItself", "/files", "a.rest"},
		{"RestMatchesBelow", "/files/a/b/c.txt", "a.rest"},
		{"RestNeedsWholeSegment", "/filesystem", ""},
		{"Params", "/u/7/posts/9", "a.param"},
		{"ParamNotEmpty", "/u//posts/9", ""},
		{"ParamOneSegment", "/u/7/8/posts/9", ""},
		{"Root", "/", "a.root"},
		{"TrailingSlashIsItsOwnPath", "/dir/", "a.slash"},
		{"NoTrailingSlash", "/dir", ""},
		{"EscapesDecoded", "/u/%37/posts/x%20y", "a.param"},
		{"EncodedSlashDenied", "/files%2Fa", ""},
		{"EncodedSlashInParamDenied", "/u/a%2Fb/posts/1", ""},
		{"DotSegmentDenied", "/files/../u/1/posts/2", ""},
		{"EncodedDotSegmentDenied", "/files/%2e%2e/x", ""},
		{"SingleDotDenied", "/files/./x", ""},
		{"BrokenEscapeDenied", "/files/%zz", ""},
		{"NoLeadingSlashDenied", "files/a", ""},
		{"AbsoluteURIDenied", "http://host/files/a", ""},
		{"FragmentIgnored", "/files/a#x", "a.rest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := describe(table.Match("GET", c.uri)); got != c.want {
				t.Errorf("Match(GET, %s) = %q, want %q", c.uri, got, c.want)
			}
		})
	}
	t.Run("MethodIsCaseSensitiveOnRequests", func(t *testing.T) {
		if r := table.Match("get", "/u/1/posts/2"); r != nil && describe(r) == "a.param" {
			t.Errorf("lower-case request method matched a GET rule")
		}
	})
	t.Run("FirstMatchWins", func(t *testing.T) {
		table, err := authroutes.Parse("t.yaml", []byte("routes:\n- {method: '*', path: /a, actions: [x.first]}\n- {method: GET, path: /a, actions: [x.second]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(table.Match("GET", "/a")); got != "x.first" {
			t.Errorf("got %q, want x.first", got)
		}
	})
	t.Run("EmptyTableDeniesAll", func(t *testing.T) {
		table, err := authroutes.Parse("t.yaml", []byte("routes: []\n"))
		if err != nil {
			t.Fatal(err)
		}
		if r := table.Match("GET", "/"); r != nil {
			t.Errorf("empty table matched %+v", r)
		}
		var zero *authroutes.Table
		if r := zero.Match("GET", "/"); r != nil {
			t.Errorf("nil table matched %+v", r)
		}
	})
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // in the error, after the file name
	}{
		{"Empty", "", "t.yaml: empty route table"},
		{"Syntax", "routes:\n  - method: GET\n   path: /x\n", "t.yaml: yaml: line"},
		{"NotAMapping", "- a\n", "t.yaml:1: want a mapping"},
		{"UnknownTopKey", "routes: []\nrouts: []\n", "t.yaml:2: unknown key \"routs\""},
		{"MissingRoutes", "{}\n", "t.yaml:1: missing key \"routes\""},
		{"RoutesNotList", "routes: {}\n", "t.yaml:1: \"routes\" must be a list"},
		{"RuleNotMapping", "routes:\n  - GET /x\n", "t.yaml:2: rule 1: want a mapping"},
		{"UnknownRuleKey", "routes:\n  - method: GET\n    path: /x\n    action: [a.b]\n", "t.yaml:4: rule 1: unknown key \"action\""},
		{"DuplicateKey", "routes:\n  - method: GET\n    method: POST\n    path: /x\n    actions: []\n", "t.yaml:3: rule 1: \"method\" given twice"},
		{"MissingMethod", "routes:\n  - path: /x\n    actions: []\n", "t.yaml:2: rule 1: missing method"},
		{"BadMethod", "routes:\n  - method: GE T\n    path: /x\n    actions: []\n", "t.yaml:2: rule 1: method \"GE T\""},
		{"MissingPath", "routes:\n  - method: GET\n    actions: []\n", "t.yaml:2: rule 1: missing path"},
		{"RelativePath", "routes:\n  - method: GET\n    path: x\n    actions: []\n", "t.yaml:3: rule 1: path \"x\": must start with /"},
		{"SingleStar", "routes:\n  - method: GET\n    path: /api/*\n    actions: []\n", "use {name} for one whole segment"},
		{"RestNotLast", "routes:\n  - method: GET\n    path: /a/**/b\n    actions: []\n", "** may only be the last segment"},
		{"BadParam", "routes:\n  - method: GET\n    path: /a/{}\n    actions: []\n", "a parameter is {name}"},
		{"DoubleSlash", "routes:\n  - method: GET\n    path: /a//b\n    actions: []\n", "empty segment"},
		{"DotSegment", "routes:\n  - method: GET\n    path: /a/../b\n    actions: []\n", "dot segments"},
		{"Query", "routes:\n  - method: GET\n    path: /a?x=1\n    actions: []\n", "without a query"},
		{"MissingActions", "routes:\n  - method: GET\n    path: /x\n", "t.yaml:2: rule 1: missing actions"},
		{"ActionsNotList", "routes:\n  - method: GET\n    path: /x\n    actions: a.find\n", "t.yaml:4: rule 1: actions must be a list"},
		{"MalformedAction", "routes:\n  - method: GET\n    path: /x\n    actions:\n      - a.find\n      - bad action\n", "t.yaml:6: rule 1: action \"bad action\""},
		{"ActionWithoutVerb", "routes:\n  - method: GET\n    path: /x\n    actions: [article]\n", "t.yaml:4: rule 1: action \"article\""},
		{"NumberAsAction", "routes:\n  - method: GET\n    path: /x\n    actions: [12]\n", "each action must be a string"},
		{"PublicWithActions", "routes:\n  - method: GET\n    path: /x\n    public: true\n    actions: [a.find]\n", "t.yaml:2: rule 1: a public rule needs no token"},
		{"PublicNotBool", "routes:\n  - method: GET\n    path: /x\n    public: yes please\n", "t.yaml:4: rule 1: public must be true or false"},
		{"SecondRuleNamed", "routes:\n  - {method: GET, path: /a, actions: []}\n  - {method: GET, path: /b}\n", "t.yaml:3: rule 2: missing actions"},
		{"TwoDocuments", "routes: []\n---\nroutes: []\n", "one YAML document"},
		// The first list would be dropped without a word.
		{"RoutesTwice", "routes:\n  - {method: GET, path: /x, public: true}\nroutes: []\n", "t.yaml:3: \"routes\" given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := authroutes.Parse("t.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
	t.Run("TooManyActions", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("routes:\n  - method: GET\n    path: /x\n    actions:\n")
		for range 1001 {
			b.WriteString("      - a.find\n")
		}
		if _, err := authroutes.Parse("t.yaml", []byte(b.String())); err == nil || !strings.Contains(err.Error(), "t.yaml:4: rule 1: at most 1000 actions") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("MissingFile", func(t *testing.T) {
		_, err := authroutes.Load(filepath.Join(t.TempDir(), "none.yaml"))
		if err == nil || !os.IsNotExist(errorsUnwrap(err)) {
			t.Errorf("err = %v, want a not-exist error", err)
		}
	})
}

func errorsUnwrap(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

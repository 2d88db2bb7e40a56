package authroutes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokend/tokend/service"
)

// Rule is one line of the table: requests with Method (or any method, "*")
// on a path matching Pattern need a valid token holding every one of
// Actions, or nothing at all when Public.
type Rule struct {
	Line    int    // where the rule starts in its file
	Method  string // upper-case method, or "*"; a GET rule also matches HEAD
	Pattern string
	Actions []string // empty: any valid token will do
	Public  bool     // no token needed

	segments []segment
}

// segment is one slash-separated piece of a pattern.
type segment struct {
	literal string
	kind    segmentKind
}

type segmentKind int

const (
	literalSegment segmentKind = iota
	paramSegment               // {name}: exactly one non-empty segment
	restSegment                // **: the rest of the path, possibly nothing
)

// Table is a parsed route table. The zero Table has no rules and denies
// every request.
type Table struct {
	rules []Rule
}

// Rules returns the table's rules in order. The caller must not modify them.
func (t *Table) Rules() []Rule {
	if t == nil {
		return nil
	}
	return t.rules
}

// Load reads and parses the route table in the file at path. Its errors
// name the file and the line at fault.
func Load(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a route table; name (the file name) prefixes its errors,
// which say on which line the fault is. It refuses unknown keys, keys
// given twice, rules without a method or a path, patterns it cannot read,
// malformed actions, and rules that say neither which actions they need nor
// that they are public, so that a typo cannot silently open or close a
// route.
func Parse(name string, data []byte) (*Table, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty route table: want a list under \"routes:\"", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fail(extra.Line, "a route table is one YAML document")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fail(top.Line, "want a mapping with the key \"routes\"")
	}
	var routes *yaml.Node
	for i := 0; i < len(top.Content); i += 2 {
		key, value := top.Content[i], top.Content[i+1]
		if key.Value != "routes" {
			return nil, fail(key.Line, "unknown key %q: the only key is \"routes\"", key.Value)
		}
		if routes != nil {
			return nil, fail(key.Line, "%q given twice", key.Value)
		}
		routes = value
	}
	if routes == nil {
		return nil, fail(top.Line, "missing key \"routes\"")
	}
	if routes.Kind != yaml.SequenceNode {
		return nil, fail(routes.Line, "\"routes\" must be a list of rules")
	}
	t := &Table{}
	for i, n := range routes.Content {
		r, err := parseRule(n)
		if err != nil {
			return nil, fail(err.line, "rule %d: %s", i+1, err.msg)
		}
		t.rules = append(t.rules, r)
	}
	return t, nil
}

// lineError is a fault in a rule and the line it is on.
type lineError struct {
	line int
	msg  string
}

func faultAt(n *yaml.Node, format string, args ...any) *lineError {
	return &lineError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

func parseRule(n *yaml.Node) (Rule, *lineError) {
	r := Rule{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		return r, faultAt(n, "want a mapping with method, path and actions (or public: true)")
	}
	seen := map[string]bool{}
	var hasActions bool
	for i := 0; i < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if seen[key.Value] {
			return r, faultAt(key, "%q given twice", key.Value)
		}
		seen[key.Value] = true
		switch key.Value {
		case "method":
			m, err := parseMethod(value)
			if err != nil {
				return r, err
			}
			r.Method = m
		case "path":
			if value.Kind != yaml.ScalarNode {
				return r, faultAt(value, "path must be a string such as /api/articles/{id}")
			}
			segs, msg := parsePattern(value.Value)
			if msg != "" {
				return r, faultAt(value, "path %q: %s", value.Value, msg)
			}
			r.Pattern, r.segments = value.Value, segs
		case "actions":
			if value.Kind != yaml.SequenceNode {
				return r, faultAt(value, "actions must be a list (write [] to need only a valid token)")
			}
			for _, a := range value.Content {
				if a.Kind != yaml.ScalarNode || a.Tag != "!!str" {
					return r, faultAt(a, "each action must be a string such as api::article.article.find")
				}
				if err := service.CheckActions([]string{a.Value}); err != nil {
					return r, faultAt(a, "%v", err)
				}
				r.Actions = append(r.Actions, a.Value)
			}
			if err := service.CheckActions(r.Actions); err != nil {
				return r, faultAt(key, "%v", err)
			}
			hasActions = true
		case "public":
			if value.Kind != yaml.ScalarNode || value.Decode(&r.Public) != nil {
				return r, faultAt(value, "public must be true or false")
			}
		default:
			return r, faultAt(key, "unknown key %q: a rule has method, path, actions and public", key.Value)
		}
	}
	switch {
	case r.Method == "":
		return r, faultAt(n, "missing method (a method such as GET, or \"*\" for any)")
	case r.segments == nil:
		return r, faultAt(n, "missing path")
	case r.Public && len(r.Actions) > 0:
		return r, faultAt(n, "a public rule needs no token, so it cannot list actions")
	case !r.Public && !hasActions:
		return r, faultAt(n, "missing actions: list the actions the route needs, [] for any valid token, or say public: true")
	}
	return r, nil
}

func parseMethod(n *yaml.Node) (string, *lineError) {
	if n.Kind != yaml.ScalarNode {
		return "", faultAt(n, "method must be a method name such as GET, or \"*\"")
	}
	m := strings.ToUpper(n.Value)
	if m == "*" {
		return m, nil
	}
	if m == "" || len(m) > 20 {
		return "", faultAt(n, "method %q: want a method name such as GET, or \"*\"", n.Value)
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return "", faultAt(n, "method %q: want a method name such as GET, or \"*\"", n.Value)
		}
	}
	return m, nil
}

// parsePattern splits a path pattern into segments, or says what is wrong.
func parsePattern(p string) ([]segment, string) {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return nil, "must start with /"
	}
	parts := strings.Split(rest, "/")
	segs := make([]segment, 0, len(parts))
	for i, part := range parts {
		last := i == len(parts)-1
		switch {
		case part == "**":
			if !last {
				return nil, "** may only be the last segment"
			}
			segs = append(segs, segment{kind: restSegment})
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			if !isName(part[1 : len(part)-1]) {
				return nil, fmt.Sprintf("%s: a parameter is {name}, with letters, digits and _", part)
			}
			segs = append(segs, segment{kind: paramSegment})
		case strings.ContainsAny(part, "{}*"):
			return nil, fmt.Sprintf("%s: use {name} for one whole segment or ** for the rest of the path", part)
		case part == "" && !last:
			return nil, "empty segment (//)"
		case part == "." || part == "..":
			return nil, "dot segments never match: requests holding them are denied"
		case strings.ContainsAny(part, "?#%"):
			return nil, fmt.Sprintf("%s: write the path decoded, without a query or fragment", part)
		default:
			segs = append(segs, segment{literal: part})
		}
	}
	return segs, ""
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Match returns the first rule matching a request with this method and
// URI (as the client sent it: a path, possibly with a query, which is
// ignored), or nil. A URI whose path could be read differently by the
// upstream than here (dot segments, an encoded slash, an empty segment
// inside the path, a broken escape, no leading slash) matches nothing, so it
// is denied.
func (t *Table) Match(method, uri string) *Rule {
	if t == nil || len(t.rules) == 0 {
		return nil
	}
	segs, ok := requestSegments(uri)
	if !ok {
		return nil
	}
	for i := range t.rules {
		r := &t.rules[i]
		if r.Method != "*" && r.Method != method && !(r.Method == "GET" && method == "HEAD") {
			continue
		}
		if r.matchPath(segs) {
			return r
		}
	}
	return nil
}

// requestSegments decodes the path of a request URI into its segments.
func requestSegments(uri string) ([]string, bool) {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	rest, ok := strings.CutPrefix(uri, "/")
	if !ok {
		return nil, false
	}
	parts := strings.Split(rest, "/")
	for i, raw := range parts {
		s, err := url.PathUnescape(raw)
		if err != nil || strings.Contains(s, "/") || s == "." || s == ".." || (s == "" && i < len(parts)-1) {
			return nil, false
		}
		parts[i] = s
	}
	return parts, true
}

func (r *Rule) matchPath(segs []string) bool {
	for i, p := range r.segments {
		if p.kind == restSegment {
			return true
		}
		if i >= len(segs) {
			return false
		}
		switch p.kind {
		case paramSegment:
			if segs[i] == "" {
				return false
			}
		case literalSegment:
			if segs[i] != p.literal {
				return false
			}
		}
	}
	return len(segs) == len(r.segments)
}

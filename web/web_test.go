package web_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/web"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestHandlerServesFiles(t *testing.T) {
	h := web.Handler(web.Options{})
	for _, tc := range []struct {
		path, contentType string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/console/app.js", "text/javascript; charset=utf-8"},
		{"/console/api.js", "text/javascript; charset=utf-8"},
		{"/console/app.css", "text/css; charset=utf-8"},
		{"/console/icon.svg", "image/svg+xml"},
		{"/console/config.json", "application/json"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tc.path)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK || len(body) == 0 {
				t.Fatalf("GET %s: %d with %d bytes, want 200 and a body", tc.path, res.StatusCode, len(body))
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
		})
	}
}

func TestHandlerSecurityHeaders(t *testing.T) {
	h := web.Handler(web.Options{})
	for _, path := range []string{"/", "/console/app.js", "/console/config.json", "/nope"} {
		t.Run(path, func(t *testing.T) {
			res := get(t, h, http.MethodGet, path)
			want := map[string]string{
				"Content-Security-Policy": web.ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	// The policy itself: nothing but the page's own origin, nothing inline.
	for _, directive := range []string{
		"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
	} {
		if !strings.Contains(web.ContentSecurityPolicy, directive) {
			t.Errorf("the policy lacks %q", directive)
		}
	}
	if strings.Contains(web.ContentSecurityPolicy, "unsafe") {
		t.Errorf("the policy allows something unsafe: %s", web.ContentSecurityPolicy)
	}
}

func TestHandlerUnknownPaths(t *testing.T) {
	h := web.Handler(web.Options{})
	for _, path := range []string{"/index.html", "/console/", "/console/nope.js", "/static/app.js", "/console/../web.go", "/favicon.ico"} {
		if res := get(t, h, http.MethodGet, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
	res := get(t, h, http.MethodPost, "/")
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q; want 405 and GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
	res = get(t, h, http.MethodHead, "/")
	if body, _ := io.ReadAll(res.Body); res.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /: %d with %d bytes, want 200 and no body", res.StatusCode, len(body))
	}
}

func TestHandlerConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lifespans []time.Duration
		want      []web.Lifespan
	}{
		{"Defaults", []time.Duration{7 * 24 * time.Hour, 30 * 24 * time.Hour, 90 * 24 * time.Hour}, []web.Lifespan{
			{Duration: "604800s", Label: "7 days"},
			{Duration: "2592000s", Label: "30 days"},
			{Duration: "7776000s", Label: "90 days"},
		}},
		{"OtherUnits", []time.Duration{time.Second, 90 * time.Second, 12 * time.Hour, 24 * time.Hour}, []web.Lifespan{
			{Duration: "1s", Label: "1 second"},
			{Duration: "90s", Label: "90 seconds"},
			{Duration: "43200s", Label: "12 hours"},
			{Duration: "86400s", Label: "1 day"},
		}},
		{"None", nil, []web.Lifespan{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := get(t, web.Handler(web.Options{Lifespans: tc.lifespans}), http.MethodGet, "/console/config.json")
			var got web.Config
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if len(got.Lifespans) != len(tc.want) {
				t.Fatalf("lifespans = %+v, want %+v", got.Lifespans, tc.want)
			}
			for i := range tc.want {
				if got.Lifespans[i] != tc.want[i] {
					t.Errorf("lifespans[%d] = %+v, want %+v", i, got.Lifespans[i], tc.want[i])
				}
			}
		})
	}
}

// TestNoExternalURLs keeps the console self-contained: no file may name
// anything on another origin. XML namespace names are identifiers that no
// browser fetches, so they are the one exception.
func TestNoExternalURLs(t *testing.T) {
	namespaces := regexp.MustCompile(`http://www\.w3\.org/2000/svg`)
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://`)
	n := 0
	err := filepath.WalkDir("static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := namespaces.ReplaceAllString(string(b), "")
		for _, m := range url.FindAllString(text, -1) {
			t.Errorf("%s names an external URL: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("found %d files under static/, want the console's files", n)
	}
	// What the browser loads must come from the handler: every file the page
	// and the modules reference is served.
	h := web.Handler(web.Options{})
	ref := regexp.MustCompile(`(?:href|src)="(console/[^"]+)"|from '\./([^']+)'`)
	files, err := filepath.Glob("static/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			path := "/" + m[1]
			if m[2] != "" {
				path = "/console/" + m[2]
			}
			if res := get(t, h, http.MethodGet, path); res.StatusCode != http.StatusOK {
				t.Errorf("%s references %s, which answers %d", file, path, res.StatusCode)
			}
		}
	}
}

package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// ContentSecurityPolicy is sent with every response of the handler. The
// console needs nothing beyond its own origin: no inline script or style, no
// font, no third-party request, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// Options configures the console.
type Options struct {
	// Lifespans are the token durations the server accepts
	// (service.Service.Lifespans); the console offers them, and
	// "Unlimited", in the "Token duration" field.
	Lifespans []time.Duration
}

// page is one response the handler can give.
type page struct {
	contentType string
	body        []byte
}

// contentTypes maps the extensions of the embedded files to their media
// types. An explicit table, not the mime package: the system's mime.types
// must not change what the browser is told.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// Handler returns the console's HTTP handler: the page at "/", its assets
// and its configuration under "/console/", and 404 for anything else. Mount
// it at "/" beside the API.
func Handler(opts Options) http.Handler {
	pages := map[string]page{}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("web: no content type for %s", name)
		}
		url := "/console/" + strings.TrimPrefix(name, "static/")
		if name == "static/index.html" {
			url = "/"
		}
		pages[url] = page{contentType: ct, body: body}
		return nil
	})
	if err != nil {
		// The files are compiled in: a failure here is a build mistake
		// that every test run catches.
		panic(err)
	}
	pages["/console/config.json"] = page{contentType: contentTypes[".json"], body: configJSON(opts)}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		p, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", p.contentType)
		h.Set("Content-Length", fmt.Sprint(len(p.body)))
		if r.Method == http.MethodGet {
			w.Write(p.body)
		}
	})
}

// Config is the document served at /console/config.json.
type Config struct {
	// Lifespans are the duration presets, shortest first; "Unlimited" is
	// not among them (it is the absence of a lifespan).
	Lifespans []Lifespan `json:"lifespans"`
}

// Lifespan is one duration preset.
type Lifespan struct {
	// Duration is the value of the token's lifespan field, as protojson
	// writes a google.protobuf.Duration ("604800s").
	Duration string `json:"duration"`
	// Label is how the console shows it ("7 days").
	Label string `json:"label"`
}

func configJSON(opts Options) []byte {
	c := Config{Lifespans: []Lifespan{}}
	for _, d := range opts.Lifespans {
		c.Lifespans = append(c.Lifespans, Lifespan{
			Duration: fmt.Sprintf("%ds", int64(d/time.Second)),
			Label:    durationLabel(d),
		})
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain strings always marshal
	}
	return b
}

// durationLabel writes d in the largest unit that divides it: "7 days",
// "12 hours", "1 second".
func durationLabel(d time.Duration) string {
	units := []struct {
		size time.Duration
		name string
	}{
		{24 * time.Hour, "day"},
		{time.Hour, "hour"},
		{time.Minute, "minute"},
		{time.Second, "second"},
	}
	for _, u := range units {
		if d >= u.size && d%u.size == 0 {
			n := int64(d / u.size)
			if n == 1 {
				return "1 " + u.name
			}
			return fmt.Sprintf("%d %ss", n, u.name)
		}
	}
	return d.String()
}

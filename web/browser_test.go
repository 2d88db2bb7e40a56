package web_test

// The harness of the console tests: a real tokend (server.Start on
// 127.0.0.1:0 ports), headless Chromium driven by chromedp, and the REST API
// seen from the test's side.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tokend/tokend/server"
)

const chromiumPath = "/usr/bin/chromium"

// chromium returns the browser to drive, or skips the test (fails it when
// TOKEND_REQUIRE_BROWSER=1) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "BROWSER TESTS SKIPPED: Chromium is not installed at " + chromiumPath +
		" (apt-get install -y chromium); set TOKEND_REQUIRE_BROWSER=1 to make this a failure"
	if os.Getenv("TOKEND_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** %s ***\n\n", msg)
	t.Skip(msg)
	return ""
}

// console is a running tokend and a browser to look at it with.
type console struct {
	base    string // the console's URL, ending in "/"
	root    string // the root admin secret
	browser context.Context
	shots   string // where screenshots go
}

// startConsole starts tokend with these lifespan presets (nil: the
// defaults) and a headless Chromium.
func startConsole(t *testing.T, lifespans []time.Duration) *console {
	t.Helper()
	execPath := chromium(t)
	dir := t.TempDir()
	srv, err := server.Start(context.Background(), server.Config{
		GRPCAddr:      "127.0.0.1:0",
		HTTPAddr:      "127.0.0.1:0",
		DataDir:       dir,
		RootTokenFile: filepath.Join(dir, "root"),
		Lifespans:     lifespans,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	root, err := os.ReadFile(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(browserCtx); err != nil { // starts the browser, with no deadline
		t.Fatalf("start Chromium: %v", err)
	}
	c := &console{
		base:    "http://" + srv.HTTPAddr().String() + "/",
		root:    strings.TrimSpace(string(root)),
		browser: browserCtx,
		shots:   t.TempDir(),
	}
	return c
}

// tab is a browser tab on the console, with what the page did: every
// request it made and every error it reported.
type tab struct {
	t   *testing.T
	c   *console
	ctx context.Context

	mu       sync.Mutex
	requests []request
	problems []string
}

type request struct {
	method, url, body string
}

// newTab opens a tab (its own sessionStorage) of the given width. When the
// test ends it checks that the page requested nothing outside tokend and
// raised no error.
func (c *console) newTab(t *testing.T, width int64) *tab {
	t.Helper()
	tb := &tab{t: t, c: c}
	ctx, cancel := chromedp.NewContext(c.browser, chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	// The first run opens the tab and ties it to the context it gets: give
	// it one without a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	tb.do(chromedp.EmulateViewport(width, 900))
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, r := range tb.requests {
			if !strings.HasPrefix(r.url, c.base) && !strings.HasPrefix(r.url, "data:") {
				t.Errorf("the page requested %s outside tokend", r.url)
			}
		}
		for _, p := range tb.problems {
			t.Errorf("the page reported: %s", p)
		}
	})
	return tb
}

func (tb *tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		var body []byte
		for _, e := range ev.Request.PostDataEntries {
			body = append(body, e.Bytes...)
		}
		tb.requests = append(tb.requests, request{ev.Request.Method, ev.Request.URL, string(body)})
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		tb.problems = append(tb.problems, "exception: "+msg)
	case *cdplog.EventEntryAdded:
		// Failed API calls (401, 409…) are logged by the network source:
		// they are part of the tests. Anything else, such as a
		// Content-Security-Policy violation, is a bug.
		if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
			tb.problems = append(tb.problems, string(ev.Entry.Source)+": "+ev.Entry.Text)
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			tb.problems = append(tb.problems, "console."+string(ev.Type))
		}
	}
}

// do runs the steps with a deadline and fails the test on error.
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds, failing the test
// with what after 10 seconds.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		tb.t.Fatalf("waiting for %s (%s): %v", what, cond, err)
	}
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return strings.TrimSpace(eval[string](tb, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, sel)))
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`document.querySelector(%q)?.value ?? ""`, sel))
}

// button selects a button or link of the page by its visible text; the
// confirmation dialog's buttons have ids.
func button(text string) string {
	return fmt.Sprintf(`//*[self::button or self::a][normalize-space()=%q][not(ancestor::dialog)]`, text)
}

// screenshot saves the page as name.png.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{tb.c.shots}
	if d := os.Getenv("TOKEND_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.t.Fatal(err)
		}
		p := filepath.Join(d, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		tb.t.Logf("screenshot: %s", p)
	}
}

// emulate sets CSS media features, as name, value pairs.
func (tb *tab) emulate(nameValues ...string) {
	tb.t.Helper()
	var features []*emulation.MediaFeature
	for i := 0; i+1 < len(nameValues); i += 2 {
		features = append(features, &emulation.MediaFeature{Name: nameValues[i], Value: nameValues[i+1]})
	}
	if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: features}); err != nil {
		tb.t.Fatalf("emulate %v: %v", nameValues, err)
	}
}

// signIn signs in with secret and waits for the token table.
func (tb *tab) signIn(secret string) {
	tb.t.Helper()
	tb.do(
		chromedp.Navigate(tb.c.base),
		chromedp.WaitVisible(chromedp.ID("admin-token")),
		chromedp.SendKeys(chromedp.ID("admin-token"), secret),
		chromedp.Click(button("Sign in")),
	)
	tb.waitFor("the token table", `document.querySelector("tbody tr[data-id]") !== null`)
}

// goTo opens a route of the console and waits for its heading.
func (tb *tab) goTo(fragment string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.c.base + fragment))
	tb.waitFor("the page "+fragment, `document.querySelector("main h1") !== null && !document.querySelector("[aria-busy=true]")`)
}

// ---- The REST API, from the test's side ----

type apiToken struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	Kind         string   `json:"kind"`
	Type         string   `json:"type"`
	Permissions  []string `json:"permissions"`
	Lifespan     *string  `json:"lifespan"`
	ExpireTime   *string  `json:"expireTime"`
	LastUsedTime *string  `json:"lastUsedTime"`
}

type introspection struct {
	Active         bool     `json:"active"`
	InactiveReason string   `json:"inactiveReason"`
	Allowed        bool     `json:"allowed"`
	DeniedActions  []string `json:"deniedActions"`
}

// api calls tokend's REST API with the root token and decodes a successful
// answer into out. It returns the HTTP status.
func (c *console) api(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+strings.TrimPrefix(path, "/"), r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.root)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

func (c *console) introspect(t *testing.T, secret string, actions ...string) introspection {
	t.Helper()
	var got introspection
	if st := c.api(t, "POST", "v1/tokens:introspect", map[string]any{"token": secret, "actions": actions}, &got); st != 200 {
		t.Fatalf("introspect: HTTP %d", st)
	}
	return got
}

func (c *console) token(t *testing.T, id string) (apiToken, int) {
	t.Helper()
	var got struct{ Token apiToken }
	st := c.api(t, "GET", "v1/tokens/"+id, nil, &got)
	return got.Token, st
}

func (c *console) createToken(t *testing.T, tok map[string]any) (apiToken, string) {
	t.Helper()
	var got struct {
		Token  apiToken
		Secret string
	}
	if st := c.api(t, "POST", "v1/tokens", tok, &got); st != 200 {
		t.Fatalf("create %v: HTTP %d", tok, st)
	}
	return got.Token, got.Secret
}

func (c *console) registerActions(t *testing.T, ids ...string) {
	t.Helper()
	var actions []map[string]string
	for _, id := range ids {
		actions = append(actions, map[string]string{"id": id, "description": ""})
	}
	if st := c.api(t, "POST", "v1/actions:register", map[string]any{"actions": actions}, nil); st != 200 {
		t.Fatalf("register actions: HTTP %d", st)
	}
}

// ---- Filling the edition form ----

// choose picks an option of a select by typing its first character, as a
// keyboard user would, and checks that the label shown is want.
func (tb *tab) choose(id, want string) {
	tb.t.Helper()
	tb.do(chromedp.Focus(chromedp.ID(id)), chromedp.KeyEvent(want[:1]))
	got := strings.TrimSpace(eval[string](tb, fmt.Sprintf(`(s => s.options[s.selectedIndex].textContent)(document.getElementById(%q))`, id)))
	if got != want {
		tb.t.Fatalf("select %s shows %q after typing %q, want %q", id, got, want[:1], want)
	}
}

// check ticks the checkbox of an action in the permission picker, opening
// its group first.
func (tb *tab) check(action string) {
	tb.t.Helper()
	subject := action[:strings.LastIndex(action, ".")]
	group := fmt.Sprintf(`[data-subject=%q]`, subject)
	tb.waitFor("the group "+subject, fmt.Sprintf(`document.querySelector(%q) !== null`, group))
	if eval[string](tb, fmt.Sprintf(`document.querySelector('%s .disclosure').getAttribute("aria-expanded")`, group)) != "true" {
		tb.do(chromedp.Click(chromedp.CSS(group + " .disclosure")))
	}
	tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`%s input[value=%q]`, group, action))))
}

// newToken is what the form is filled with.
type newToken struct {
	name, description, duration, typ string
	actions                          []string // ticked one by one
	groups                           []string // ticked with "Select all"
}

// create fills the creation form, saves, and returns the secret shown in
// the banner and the new token's id.
func (tb *tab) create(n newToken) (secret, id string) {
	tb.t.Helper()
	tb.goTo("#/")
	tb.do(chromedp.Click(button("Create new API Token")), chromedp.WaitVisible(chromedp.ID("f-name")))
	tb.do(chromedp.SendKeys(chromedp.ID("f-name"), n.name))
	if n.description != "" {
		tb.do(chromedp.SendKeys(chromedp.ID("f-description"), n.description))
	}
	tb.choose("f-lifespan", n.duration)
	tb.choose("f-type", n.typ)
	for _, a := range n.actions {
		tb.check(a)
	}
	for _, g := range n.groups {
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-subject=%q] .select-all input`, g))))
	}
	tb.do(chromedp.Click(button("Save")))
	tb.waitFor("the new token banner", `document.getElementById("new-secret") !== null`)
	secret = tb.value("#new-secret")
	id = eval[string](tb, `decodeURIComponent(location.hash.replace("#/tokens/", ""))`)
	return secret, id
}

package web_test

// End-to-end tests of the console in headless Chromium against a real
// tokend (the harness is in browser_test.go). Without Chromium they skip,
// loudly, unless TOKEND_REQUIRE_BROWSER=1 makes that a failure. Screenshots
// of the main states land in the test's temporary directory and, when
// TOKEND_SCREENSHOT_DIR is set, in that directory too.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

func TestConsole(t *testing.T) {
	c := startConsole(t, nil)
	c.registerActions(t,
		"api::article.article.find", "api::article.article.findOne", "api::article.article.create",
		"api::article.article.update", "api::article.article.delete",
		"api::category.category.find", "api::category.category.findOne", "api::category.category.create",
	)

	t.Run("SignInFailure", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		// A random string, and an API token: neither is an admin token.
		_, apiSecret := c.createToken(t, map[string]any{"name": "Not an admin"})
		for _, secret := range []string{"tkda_wrong", apiSecret} {
			tb.do(
				chromedp.Navigate(c.base),
				chromedp.WaitVisible(chromedp.ID("admin-token")),
				chromedp.SendKeys(chromedp.ID("admin-token"), secret),
				chromedp.Click(button("Sign in")),
			)
			tb.waitFor("the sign-in error", `document.getElementById("signin-error").textContent !== ""`)
			if got := tb.text("#signin-error"); !strings.Contains(got, "not accepted") {
				t.Errorf("sign-in error = %q, want it to say the token was not accepted", got)
			}
			if got := eval[string](tb, `document.getElementById("admin-token").type`); got != "password" {
				t.Errorf("the admin token field has type %q, want password", got)
			}
			if eval[bool](tb, `sessionStorage.length > 0`) {
				t.Error("a refused token was kept in sessionStorage")
			}
		}
		tb.screenshot("sign-in-error")
	})

	t.Run("SignOut", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		if got := eval[string](tb, `sessionStorage.getItem("tokend.adminToken")`); got != c.root {
			t.Errorf("sessionStorage holds %q, want the admin token", got)
		}
		tb.do(chromedp.Reload())
		tb.waitFor("the table after a reload", `document.querySelector("tbody tr[data-id]") !== null`)
		tb.do(chromedp.Click(button("Sign out")), chromedp.WaitVisible(chromedp.ID("admin-token")))
		if eval[bool](tb, `sessionStorage.length > 0`) {
			t.Error("Sign out left the token in sessionStorage")
		}
	})

	t.Run("Create", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		tb.goTo("#/new")
		// The product's words, exactly.
		labels := eval[[]string](tb, `[...document.querySelectorAll("main form label[for^='f-']")].map(l => l.textContent.trim())`)
		for _, want := range []string{"Name", "Description", "Token duration", "Token type"} {
			if !slices.Contains(labels, want) {
				t.Errorf("form labels %q lack %q", labels, want)
			}
		}
		options := func(id string) []string {
			return eval[[]string](tb, fmt.Sprintf(`[...document.getElementById(%q).options].map(o => o.textContent.trim())`, id))
		}
		if got, want := options("f-lifespan"), []string{"7 days", "30 days", "90 days", "Unlimited"}; !slices.Equal(got, want) {
			t.Errorf("Token duration offers %q, want %q", got, want)
		}
		if got, want := options("f-type"), []string{"Read-only", "Full access", "Custom"}; !slices.Equal(got, want) {
			t.Errorf("Token type offers %q, want %q", got, want)
		}

		const day = 24 * time.Hour
		for _, tc := range []struct {
			form     newToken
			typ      string
			lifespan time.Duration // 0: unlimited
			allowed  []string
			denied   []string
		}{{
			form:     newToken{name: "Read-only 7 days", description: "Reads articles", duration: "7 days", typ: "Read-only"},
			typ:      "TOKEN_TYPE_READ_ONLY",
			lifespan: 7 * day,
			allowed:  []string{"api::article.article.find", "api::category.category.findOne"},
			denied:   []string{"api::article.article.create"},
		}, {
			form:     newToken{name: "Full access 30 days", duration: "30 days", typ: "Full access"},
			typ:      "TOKEN_TYPE_FULL_ACCESS",
			lifespan: 30 * day,
			allowed:  []string{"api::article.article.delete", "api::category.category.create"},
		}, {
			form: newToken{name: "Custom 90 days", duration: "90 days", typ: "Custom",
				actions: []string{"api::article.article.find", "api::article.article.create"},
				groups:  []string{"api::category.category"}},
			typ:      "TOKEN_TYPE_CUSTOM",
			lifespan: 90 * day,
			allowed:  []string{"api::article.article.find", "api::article.article.create", "api::category.category.find", "api::category.category.findOne", "api::category.category.create"},
			denied:   []string{"api::article.article.findOne", "api::article.article.delete"},
		}, {
			form:    newToken{name: "Unlimited read-only", duration: "Unlimited", typ: "Read-only"},
			typ:     "TOKEN_TYPE_READ_ONLY",
			allowed: []string{"api::article.article.find"},
			denied:  []string{"api::article.article.update"},
		}} {
			t.Run(strings.ReplaceAll(tc.form.name, " ", ""), func(t *testing.T) {
				before := time.Now()
				secret, id := tb.create(tc.form)
				if !strings.HasPrefix(secret, "tkd_") {
					t.Fatalf("the banner shows %q, want a tkd_ secret", secret)
				}
				if got := tb.text(".secret-banner"); !strings.Contains(got, "will not be shown again") {
					t.Errorf("the banner says %q, want the warning that the token will not be shown again", got)
				}
				tok, st := c.token(t, id)
				if st != 200 || tok.Name != tc.form.name || tok.Type != tc.typ || tok.Description != tc.form.description {
					t.Fatalf("created token = %+v (HTTP %d)", tok, st)
				}
				if tc.lifespan == 0 {
					if tok.Lifespan != nil || tok.ExpireTime != nil {
						t.Errorf("unlimited token has lifespan %v, expiry %v", tok.Lifespan, tok.ExpireTime)
					}
				} else {
					want := fmt.Sprintf("%ds", int64(tc.lifespan/time.Second))
					if tok.Lifespan == nil || *tok.Lifespan != want {
						t.Errorf("lifespan = %v, want %s", tok.Lifespan, want)
					}
					if exp, err := time.Parse(time.RFC3339Nano, *tok.ExpireTime); err != nil || exp.Before(before.Add(tc.lifespan)) {
						t.Errorf("expireTime = %v, want about now + %s", *tok.ExpireTime, tc.lifespan)
					}
				}
				// The secret works, with exactly the chosen permissions.
				for _, a := range tc.allowed {
					if got := c.introspect(t, secret, a); !got.Active || !got.Allowed {
						t.Errorf("introspect %s: %+v, want active and allowed", a, got)
					}
				}
				for _, a := range tc.denied {
					if got := c.introspect(t, secret, a); !got.Active || got.Allowed {
						t.Errorf("introspect %s: %+v, want active and denied", a, got)
					}
				}

				// Shown once: a reload hides it for good, and it was never
				// stored anywhere.
				tb.do(chromedp.Reload())
				tb.waitFor("the token's page", fmt.Sprintf(`document.getElementById("f-name")?.value === %q`, tc.form.name))
				if eval[bool](tb, `document.getElementById("new-secret") !== null`) {
					t.Error("the new token is still shown after a reload")
				}
				where := fmt.Sprintf(`[document.documentElement.outerHTML, JSON.stringify({...sessionStorage}), JSON.stringify({...localStorage}), document.cookie, location.href].join(" ").includes(%q)`, secret)
				if eval[bool](tb, where) {
					t.Error("the secret is still in the page, the storage, a cookie or the URL after a reload")
				}
			})
		}

		// The table shows every token, with its expiry.
		tb.goTo("#/")
		rows := eval[[]string](tb, `[...document.querySelectorAll("tbody tr[data-id]")].map(r => r.innerText.replace(/\s+/g, " "))`)
		for _, want := range []string{"Unlimited read-only", "Custom 90 days", "Full access 30 days", "Read-only 7 days"} {
			if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, want) }) {
				t.Errorf("table rows %q lack %q", rows, want)
			}
		}
		unlimited := eval[string](tb, `[...document.querySelectorAll("tbody tr")].find(r => r.querySelector("th").textContent === "Unlimited read-only").querySelector("td.expiry").textContent`)
		if unlimited != "Unlimited" {
			t.Errorf("expiry of an unlimited token = %q, want Unlimited", unlimited)
		}
	})

	t.Run("NavigationHidesTheSecret", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		secret, _ := tb.create(newToken{name: "Shown once", duration: "7 days", typ: "Read-only"})
		tb.do(chromedp.Click(button("Back")))
		tb.waitFor("the table", `document.querySelector("tbody tr[data-id]") !== null`)
		if eval[bool](tb, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, secret)) {
			t.Error("the secret is still in the page after going back to the table")
		}
		tb.do(chromedp.NavigateBack())
		tb.waitFor("the token's page", `document.getElementById("f-name")?.value === "Shown once"`)
		if eval[bool](tb, `document.getElementById("new-secret") !== null`) {
			t.Error("the secret came back with the browser's Back button")
		}
	})

	t.Run("DuplicateName", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		tb.goTo("#/new")
		// "Full Access" exists since the first start; names compare
		// case-insensitively.
		tb.do(
			chromedp.SendKeys(chromedp.ID("f-name"), "full access"),
			chromedp.SendKeys(chromedp.ID("f-description"), "Keep this text"),
		)
		tb.choose("f-lifespan", "90 days")
		tb.choose("f-type", "Custom")
		tb.check("api::article.article.update")
		tb.do(chromedp.Click(button("Save")))
		tb.waitFor("the Name error", `document.getElementById("f-name-error").textContent !== ""`)
		if got := tb.text("#f-name-error"); !strings.Contains(got, "already has this name") {
			t.Errorf("Name error = %q, want the server's duplicate-name message", got)
		}
		if eval[string](tb, `document.getElementById("f-name").getAttribute("aria-invalid")`) != "true" {
			t.Error("the Name field is not marked invalid")
		}
		if !eval[bool](tb, `document.getElementById("f-name").getAttribute("aria-describedby").split(" ").includes("f-name-error")`) {
			t.Error("the Name error does not describe the Name field")
		}
		if eval[string](tb, `document.activeElement.id`) != "f-name" {
			t.Error("focus did not move to the Name field")
		}
		// Nothing was lost.
		for sel, want := range map[string]string{
			"#f-name": "full access", "#f-description": "Keep this text",
			"#f-lifespan": "7776000s", "#f-type": "TOKEN_TYPE_CUSTOM",
		} {
			if got := tb.value(sel); got != want {
				t.Errorf("%s = %q after the error, want %q", sel, got, want)
			}
		}
		if !eval[bool](tb, `document.querySelector('input[value="api::article.article.update"]').checked`) {
			t.Error("the ticked permission was lost")
		}
		for _, id := range []string{"f-description", "f-lifespan", "f-type"} {
			if got := tb.text("#" + id + "-error"); got != "" {
				t.Errorf("%s shows the error %q", id, got)
			}
		}
		tb.screenshot("duplicate-name")
	})

	t.Run("Edit", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		tok, _ := c.createToken(t, map[string]any{"name": "Editable", "description": "Before", "lifespan": "604800s"})
		tb.goTo("#/")
		tb.do(chromedp.Click(chromedp.CSS(`[aria-label="Edit Editable"]`)))
		tb.waitFor("the edit form", `document.getElementById("f-name")?.value === "Editable"`)
		if got := tb.value("#f-lifespan"); got != "604800s" {
			t.Errorf("Token duration prefilled with %q, want 604800s", got)
		}
		// Select the text and type over it.
		tb.do(chromedp.Focus(chromedp.ID("f-description")), chromedp.Evaluate[chromedp.Void](`document.activeElement.select()`))
		tb.do(chromedp.KeyEvent("After"), chromedp.Click(button("Save")))
		tb.waitFor("the saved status", `document.querySelector(".form-actions .status").textContent !== ""`)
		got, _ := c.token(t, tok.ID)
		if got.Description != "After" || got.Name != "Editable" || *got.ExpireTime != *tok.ExpireTime {
			t.Errorf("after the edit: %+v, want only the description changed (expiry %s kept)", got, *tok.ExpireTime)
		}
		// The request named only the changed field.
		var patch *request
		tb.mu.Lock()
		for i, r := range tb.requests {
			if r.method == "PATCH" {
				patch = &tb.requests[i]
			}
		}
		tb.mu.Unlock()
		if patch == nil {
			t.Fatal("no PATCH request")
		}
		if !strings.HasSuffix(patch.url, "/v1/tokens/"+tok.ID+"?update_mask=description") {
			t.Errorf("PATCH %s, want update_mask=description", patch.url)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(patch.body), &body); err != nil || len(body) != 1 || body["description"] != "After" {
			t.Errorf("PATCH body %s, want only the description", patch.body)
		}

		// Switch to Custom with a permission and to Unlimited.
		tb.choose("f-type", "Custom")
		tb.check("api::category.category.create")
		tb.choose("f-lifespan", "Unlimited")
		tb.do(chromedp.Click(button("Save")))
		tb.waitFor("the saved status", `document.querySelector(".form-actions .status").textContent === "Changes saved."`)
		got, _ = c.token(t, tok.ID)
		if got.Type != "TOKEN_TYPE_CUSTOM" || !slices.Equal(got.Permissions, []string{"api::category.category.create"}) || got.ExpireTime != nil {
			t.Errorf("after the second edit: %+v", got)
		}
	})

	t.Run("Regenerate", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		tok, oldSecret := c.createToken(t, map[string]any{"name": "To regenerate", "type": "TOKEN_TYPE_FULL_ACCESS"})
		tb.goTo("#/tokens/" + tok.ID)

		// Cancel first: Escape closes the dialog and nothing changes.
		tb.do(chromedp.Click(button("Regenerate")))
		tb.waitFor("the dialog", `document.getElementById("confirm-dialog").open`)
		if !eval[bool](tb, `document.getElementById("confirm-dialog").contains(document.activeElement)`) {
			t.Error("focus did not move into the dialog")
		}
		tb.do(chromedp.KeyEvent(kb.Escape))
		tb.waitFor("the dialog to close", `!document.getElementById("confirm-dialog").open`)
		if got := strings.TrimSpace(eval[string](tb, `document.activeElement.textContent`)); got != "Regenerate" {
			t.Errorf("after the dialog, focus is on %q, want the Regenerate button", got)
		}
		if got := c.introspect(t, oldSecret); !got.Active {
			t.Fatalf("cancelling regenerated the token: %+v", got)
		}

		tb.do(chromedp.Click(button("Regenerate")))
		tb.waitFor("the dialog", `document.getElementById("confirm-dialog").open`)
		if got := tb.text("#confirm-ok"); got != "Regenerate" {
			t.Errorf("the confirm button reads %q, want Regenerate", got)
		}
		tb.screenshot("regenerate-dialog")
		tb.do(chromedp.Click(chromedp.ID("confirm-ok")))
		tb.waitFor("the new token banner", `document.getElementById("new-secret") !== null`)
		newSecret := tb.value("#new-secret")
		if newSecret == oldSecret || !strings.HasPrefix(newSecret, "tkd_") {
			t.Fatalf("banner shows %q after regenerating", newSecret)
		}
		if got := strings.TrimSpace(eval[string](tb, `document.activeElement.textContent`)); got != "Regenerate" {
			t.Errorf("after the dialog, focus is on %q, want the Regenerate button", got)
		}
		if got := c.introspect(t, oldSecret); got.Active || got.InactiveReason != "INACTIVE_REASON_NOT_FOUND" {
			t.Errorf("old secret: %+v, want inactive, NOT_FOUND", got)
		}
		if got := c.introspect(t, newSecret, "api::article.article.delete"); !got.Active || !got.Allowed {
			t.Errorf("new secret: %+v, want active and allowed", got)
		}

		// The copy button puts it on the clipboard.
		origin := strings.TrimSuffix(c.base, "/")
		for _, perm := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(tb.ctx, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: origin,
			}); err != nil {
				t.Fatal(err)
			}
		}
		tb.do(chromedp.Click(button("Copy")))
		tb.waitFor("the Copied feedback", `document.querySelector(".secret-row button").textContent.trim() === "Copied"`)
		if got := eval[string](tb, `navigator.clipboard.readText()`); got != newSecret {
			t.Errorf("clipboard holds %q, want the new secret", got)
		}

		tb.do(chromedp.Reload())
		tb.waitFor("the token's page", `document.getElementById("f-name")?.value === "To regenerate"`)
		if eval[bool](tb, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, newSecret)) {
			t.Error("the regenerated secret is still shown after a reload")
		}
	})

	t.Run("Delete", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tok, secret := c.createToken(t, map[string]any{"name": "To delete"})
		tb.signIn(c.root)
		row := fmt.Sprintf(`tr[data-id=%q]`, tok.ID)
		tb.do(chromedp.WaitVisible(chromedp.CSS(row)), chromedp.Click(chromedp.CSS(`[aria-label="Delete To delete"]`)))
		tb.waitFor("the dialog", `document.getElementById("confirm-dialog").open`)
		if got := tb.text("#confirm-text"); !strings.Contains(got, "To delete") {
			t.Errorf("the dialog says %q, want it to name the token", got)
		}
		tb.do(chromedp.Click(chromedp.ID("confirm-ok")))
		tb.do(chromedp.WaitNotPresent(chromedp.CSS(row)))
		if _, st := c.token(t, tok.ID); st != http.StatusNotFound {
			t.Errorf("GET the deleted token: HTTP %d, want 404", st)
		}
		var list struct{ Tokens []apiToken }
		c.api(t, "GET", "v1/tokens?page_size=1000", nil, &list)
		if slices.ContainsFunc(list.Tokens, func(x apiToken) bool { return x.ID == tok.ID }) {
			t.Error("the deleted token is still listed")
		}
		if got := c.introspect(t, secret); got.Active {
			t.Errorf("the deleted token's secret: %+v, want inactive", got)
		}
		if got := eval[string](tb, `document.activeElement.id`); got != "search" {
			t.Errorf("after deleting, focus is on #%s, want the search box", got)
		}
	})

	t.Run("SearchAndSort", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		for _, n := range []string{"Zulu sorter", "alpha sorter", "Mike sorter"} {
			c.createToken(t, map[string]any{"name": n})
		}
		tb.signIn(c.root)
		names := func() []string {
			return eval[[]string](tb, `[...document.querySelectorAll("tbody tr[data-id] th")].map(th => th.textContent)`)
		}
		tb.do(chromedp.SendKeys(chromedp.ID("search"), "sorter"))
		if got, want := names(), []string{"alpha sorter", "Mike sorter", "Zulu sorter"}; !slices.Equal(got, want) {
			t.Errorf("search by name, sorted by name: %q, want %q", got, want)
		}
		tb.do(chromedp.Click(button("Name")))
		if got, want := names(), []string{"Zulu sorter", "Mike sorter", "alpha sorter"}; !slices.Equal(got, want) {
			t.Errorf("sorted by name, descending: %q, want %q", got, want)
		}
		tb.do(chromedp.Click(button("Created")))
		if got, want := names(), []string{"Mike sorter", "alpha sorter", "Zulu sorter"}; !slices.Equal(got, want) {
			t.Errorf("sorted by creation, newest first: %q, want %q", got, want)
		}
		if got := eval[string](tb, `document.querySelector("th[aria-sort=descending]").textContent`); got != "Created" {
			t.Errorf("aria-sort=descending on %q, want Created", got)
		}
		tb.do(chromedp.SendKeys(chromedp.ID("search"), "nothing like it"))
		if got := names(); len(got) != 0 {
			t.Errorf("a search that matches nothing shows %q", got)
		}
	})

	t.Run("AdminTab", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.signIn(c.root)
		tb.do(chromedp.Click(button("Admin tokens")))
		tb.waitFor("the admin tokens", `document.querySelector("caption")?.textContent === "Admin tokens" && document.querySelector("tbody tr[data-id]") !== null`)
		names := eval[[]string](tb, `[...document.querySelectorAll("tbody tr[data-id] th")].map(th => th.textContent)`)
		if !slices.Equal(names, []string{"Root"}) {
			t.Errorf("admin tab lists %q, want only Root", names)
		}
		// An admin token with a custom set of admin actions.
		tb.do(chromedp.Click(button("Create new admin token")), chromedp.WaitVisible(chromedp.ID("f-name")))
		tb.do(chromedp.SendKeys(chromedp.ID("f-name"), "Auditor"))
		tb.choose("f-type", "Custom")
		tb.check("tokend.token.find")
		tb.check("tokend.token.findOne")
		tb.do(chromedp.Click(button("Save")))
		tb.waitFor("the new token banner", `document.getElementById("new-secret") !== null`)
		secret := tb.value("#new-secret")
		if !strings.HasPrefix(secret, "tkda_") {
			t.Fatalf("banner shows %q, want an admin secret", secret)
		}
		// It signs in: it may list tokens.
		tb2 := c.newTab(t, 1280)
		tb2.signIn(secret)

		// Deleted while signed in: the next request signs out, and says why.
		id := eval[string](tb, `decodeURIComponent(location.hash.replace("#/tokens/", ""))`)
		if st := c.api(t, "DELETE", "v1/tokens/"+id, nil, nil); st != 200 {
			t.Fatalf("delete the admin token: HTTP %d", st)
		}
		tb2.do(chromedp.Click(button("Admin tokens")))
		tb2.waitFor("the sign-in form", `document.getElementById("admin-token") !== null`)
		if got := tb2.text("#signin-error"); !strings.Contains(got, "no longer accepted") {
			t.Errorf("after the token was deleted the console says %q", got)
		}
		if eval[bool](tb2, `sessionStorage.length > 0`) {
			t.Error("the dead token is still in sessionStorage")
		}

		// Regenerating the token the console is signed in with keeps the
		// session: it continues with the new secret.
		own, ownSecret := c.createToken(t, map[string]any{"name": "Console admin", "kind": "TOKEN_KIND_ADMIN", "type": "TOKEN_TYPE_FULL_ACCESS"})
		tb3 := c.newTab(t, 1280)
		tb3.signIn(ownSecret)
		tb3.goTo("#/tokens/" + own.ID)
		tb3.do(chromedp.Click(button("Regenerate")))
		tb3.waitFor("the dialog", `document.getElementById("confirm-dialog").open`)
		tb3.do(chromedp.Click(chromedp.ID("confirm-ok")))
		tb3.waitFor("the new token banner", `document.getElementById("new-secret") !== null`)
		newSecret := tb3.value("#new-secret")
		if got := eval[string](tb3, `sessionStorage.getItem("tokend.adminToken")`); got != newSecret {
			t.Errorf("after regenerating its own token the session holds %q, want the new secret", got)
		}
		tb3.do(chromedp.Click(button("Back")))
		tb3.waitFor("the admin tokens", `document.querySelector("caption")?.textContent === "Admin tokens" && document.querySelector("tbody tr[data-id]") !== null`)
	})

	t.Run("KeyboardOnly", func(t *testing.T) {
		tb := c.newTab(t, 1280)
		tb.do(chromedp.Navigate(c.base), chromedp.WaitVisible(chromedp.ID("admin-token")))
		if got := eval[string](tb, `document.activeElement.id`); got != "admin-token" {
			t.Fatalf("focus starts on %q, want the admin token field", got)
		}
		tb.do(chromedp.KeyEvent(c.root), chromedp.KeyEvent(kb.Enter))
		tb.waitFor("the token table", `document.querySelector("tbody tr[data-id]") !== null`)

		// tabTo presses Tab until the focused element matches.
		tabTo := func(what, cond string) {
			t.Helper()
			for range 60 {
				if eval[bool](tb, "(el => "+cond+")(document.activeElement)") {
					return
				}
				tb.do(chromedp.KeyEvent(kb.Tab))
			}
			t.Fatalf("Tab never reached %s", what)
		}
		tabTo("Create new API Token", `el.textContent.trim() === "Create new API Token"`)
		tb.do(chromedp.KeyEvent(kb.Enter))
		tb.waitFor("the form", `document.getElementById("f-name") !== null`)
		tabTo("Name", `el.id === "f-name"`)
		tb.do(chromedp.KeyEvent("Keyboard token"), chromedp.KeyEvent(kb.Tab))
		tb.do(chromedp.KeyEvent("Made without a mouse"), chromedp.KeyEvent(kb.Tab))
		tabTo("Token duration", `el.id === "f-lifespan"`)
		tb.do(chromedp.KeyEvent("3")) // 30 days
		tabTo("Token type", `el.id === "f-type"`)
		tb.do(chromedp.KeyEvent("C")) // Custom
		tabTo("the article group", `el.matches("[data-subject='api::article.article'] .disclosure")`)
		tb.do(chromedp.KeyEvent(kb.Enter))
		tabTo("the first article action", `el.matches("#perm-group-0 input")`)
		tb.do(chromedp.KeyEvent(" ")) // the first verb, alphabetically: create
		tabTo("the category group's Select all", `el.matches("[data-subject='api::category.category'] .select-all input")`)
		tb.do(chromedp.KeyEvent(" "))
		tabTo("Save", `el.textContent.trim() === "Save"`)
		tb.do(chromedp.KeyEvent(kb.Enter))
		tb.waitFor("the new token banner", `document.getElementById("new-secret") !== null`)
		tb.waitFor("focus on the new token banner", `document.activeElement.id === "new-secret-title"`)
		secret := tb.value("#new-secret")
		id := eval[string](tb, `decodeURIComponent(location.hash.replace("#/tokens/", ""))`)
		tok, _ := c.token(t, id)
		want := []string{"api::article.article.create", "api::category.category.create", "api::category.category.find", "api::category.category.findOne"}
		if tok.Name != "Keyboard token" || tok.Description != "Made without a mouse" || tok.Type != "TOKEN_TYPE_CUSTOM" ||
			tok.Lifespan == nil || *tok.Lifespan != "2592000s" || !slices.Equal(tok.Permissions, want) {
			t.Errorf("token made with the keyboard: %+v, want Custom, 30 days, %q", tok, want)
		}
		if got := c.introspect(t, secret, want...); !got.Allowed {
			t.Errorf("introspect: %+v", got)
		}
	})
}

// TestConsoleExpiry starts tokend with a one-second preset to see tokens
// expire: "Expired" in the table, and an expired admin token refused at
// sign-in.
func TestConsoleExpiry(t *testing.T) {
	c := startConsole(t, []time.Duration{time.Second, 7 * 24 * time.Hour})
	c.registerActions(t, "api::article.article.find")
	expiring, expiringSecret := c.createToken(t, map[string]any{"name": "Short-lived", "lifespan": "1s"})
	_, adminSecret := c.createToken(t, map[string]any{"name": "Short admin", "kind": "TOKEN_KIND_ADMIN", "lifespan": "1s"})
	_, usedSecret := c.createToken(t, map[string]any{"name": "Used"})
	c.introspect(t, usedSecret, "api::article.article.find")

	// Wait, polling the API, until the token has expired.
	deadline := time.Now().Add(15 * time.Second)
	for c.introspect(t, expiringSecret).InactiveReason != "INACTIVE_REASON_EXPIRED" {
		if time.Now().After(deadline) {
			t.Fatal("the one-second token never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}

	tb := c.newTab(t, 1280)
	tb.do(
		chromedp.Navigate(c.base),
		chromedp.WaitVisible(chromedp.ID("admin-token")),
		chromedp.SendKeys(chromedp.ID("admin-token"), adminSecret),
		chromedp.Click(button("Sign in")),
	)
	tb.waitFor("the sign-in error", `document.getElementById("signin-error").textContent !== ""`)
	if got := tb.text("#signin-error"); !strings.Contains(got, "expired") {
		t.Errorf("signing in with an expired admin token says %q, want it to say expired", got)
	}

	tb.do(chromedp.Clear(chromedp.ID("admin-token")))
	tb.signIn(c.root)
	cell := func(name, col string) string {
		return strings.TrimSpace(eval[string](tb, fmt.Sprintf(
			`[...document.querySelectorAll("tbody tr[data-id]")].find(r => r.querySelector("th").textContent === %q).querySelector('td[data-label=%q]').textContent`, name, col)))
	}
	if got := cell("Short-lived", "Expires"); got != "Expired" {
		t.Errorf("Short-lived expires %q, want Expired", got)
	}
	if !eval[bool](tb, fmt.Sprintf(`document.querySelector('tr[data-id=%q] .badge.expired') !== null`, expiring.ID)) {
		t.Error("Expired is not highlighted")
	}
	if got := cell("Full Access", "Expires"); got != "Unlimited" {
		t.Errorf("Full Access expires %q, want Unlimited", got)
	}
	if got := cell("Full Access", "Last used"); got != "Never" {
		t.Errorf("Full Access last used %q, want Never", got)
	}
	if got := cell("Used", "Last used"); got == "Never" || got == "" {
		t.Errorf("Used last used %q, want a date", got)
	}
	tb.screenshot("table-expired")

	// The presets offered are this server's.
	tb.goTo("#/new")
	options := eval[[]string](tb, `[...document.getElementById("f-lifespan").options].map(o => o.textContent.trim())`)
	if want := []string{"1 second", "7 days", "Unlimited"}; !slices.Equal(options, want) {
		t.Errorf("Token duration offers %q, want %q", options, want)
	}
	// The edit page says the token expired.
	tb.goTo("#/tokens/" + expiring.ID)
	if got := tb.text(".meta"); !strings.Contains(got, "Expired on") {
		t.Errorf("the token's page says %q, want Expired on …", got)
	}
}

// TestConsoleScreenshots renders the main states with realistic data, in
// both colour schemes and at a phone's width.
func TestConsoleScreenshots(t *testing.T) {
	c := startConsole(t, nil)
	c.registerActions(t,
		"api::article.article.find", "api::article.article.findOne", "api::article.article.create",
		"api::article.article.update", "api::article.article.delete",
		"api::category.category.find", "api::category.category.findOne",
		"plugin::upload.file.find", "plugin::upload.file.upload",
	)
	_, used := c.createToken(t, map[string]any{"name": "Blog frontend", "description": "Public site: reads articles and categories", "lifespan": "7776000s"})
	c.createToken(t, map[string]any{"name": "Nightly import", "description": "Cron job that creates and updates articles", "type": "TOKEN_TYPE_CUSTOM",
		"permissions": []string{"api::article.article.create", "api::article.article.update"}, "lifespan": "2592000s"})
	c.createToken(t, map[string]any{"name": "CI deploy", "description": "Deployment pipeline", "type": "TOKEN_TYPE_FULL_ACCESS", "lifespan": "604800s"})
	c.introspect(t, used, "api::article.article.find")

	tb := c.newTab(t, 1280)
	// No animation caught halfway in a picture.
	tb.emulate("prefers-reduced-motion", "reduce")
	tb.signIn(c.root)
	tb.screenshot("table")

	tb.goTo("#/new")
	tb.do(
		chromedp.SendKeys(chromedp.ID("f-name"), "Media uploader"),
		chromedp.SendKeys(chromedp.ID("f-description"), "Uploads images for articles"),
	)
	tb.choose("f-lifespan", "30 days")
	tb.choose("f-type", "Custom")
	tb.check("api::article.article.find")
	tb.check("api::article.article.findOne")
	tb.do(chromedp.Click(chromedp.CSS(`[data-subject="plugin::upload.file"] .select-all input`)))
	tb.screenshot("custom-permission-form")
	tb.do(chromedp.Click(button("Save")))
	tb.waitFor("the new token banner", `document.getElementById("new-secret") !== null`)
	tb.waitFor("the permissions", `document.querySelector(".perm-group") !== null`)
	tb.screenshot("new-token-banner")

	dark := c.newTab(t, 1280)
	dark.emulate("prefers-color-scheme", "dark", "prefers-reduced-motion", "reduce")
	dark.signIn(c.root)
	if bg := eval[string](dark, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(24, 24, 38)" {
		t.Errorf("dark scheme background = %s, want the dark palette", bg)
	}
	dark.screenshot("table-dark")
	dark.goTo("#/tokens/" + eval[string](dark, `document.querySelector("tbody tr[data-id]").dataset.id`))
	dark.screenshot("edit-dark")

	phone := c.newTab(t, 390)
	phone.emulate("prefers-reduced-motion", "reduce")
	phone.signIn(c.root)
	// Nothing wider than the screen.
	if w := eval[int](phone, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px the page is %d px wide", w)
	}
	phone.screenshot("table-390px")
	phone.goTo("#/new")
	phone.choose("f-type", "Custom")
	phone.check("api::article.article.find")
	if w := eval[int](phone, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px the form is %d px wide", w)
	}
	phone.screenshot("form-390px")
}

// TestConsoleExpiringSoon: a token expiring within 7 days says so and is
// highlighted, one expiring later says so plainly, and the filter keeps
// only the first.
func TestConsoleExpiringSoon(t *testing.T) {
	c := startConsole(t, nil)
	soon, _ := c.createToken(t, map[string]any{"name": "Week", "lifespan": "604800s"})
	later, _ := c.createToken(t, map[string]any{"name": "Month", "lifespan": "2592000s"})
	tb := c.newTab(t, 1280)
	tb.signIn(c.root)
	expiry := func(id string) string {
		return tb.text(fmt.Sprintf(`tr[data-id=%q] td.expiry`, id))
	}
	if got := expiry(soon.ID); got != "Expires in 7 days" {
		t.Errorf("a 7-day token: %q, want Expires in 7 days", got)
	}
	if got := expiry(later.ID); got != "Expires in 30 days" {
		t.Errorf("a 30-day token: %q, want Expires in 30 days", got)
	}
	highlighted := func(id string) bool {
		return eval[bool](tb, fmt.Sprintf(`document.querySelector('tr[data-id=%q] td.expiry .badge.expiring') !== null`, id))
	}
	if !highlighted(soon.ID) || highlighted(later.ID) {
		t.Errorf("highlighted: 7-day %v, 30-day %v; want only the 7-day token", highlighted(soon.ID), highlighted(later.ID))
	}
	// The filter's checkbox keeps a checkbox's size beside its label (the
	// search box's flex sizing once stretched it and squeezed the label
	// onto three lines).
	for _, width := range []int64{1280, 390} {
		tab := tb
		if width != 1280 {
			tab = c.newTab(t, width)
			tab.signIn(c.root)
		}
		box := eval[float64](tab, `document.getElementById("expiring-soon").getBoundingClientRect().width`)
		lines := eval[float64](tab, `(() => { const l = document.getElementById("expiring-soon").closest("label");
			return l.getBoundingClientRect().height / parseFloat(getComputedStyle(l).lineHeight); })()`)
		if box > 32 || lines >= 2 {
			t.Errorf("at %d px the filter's checkbox is %.0f px wide and its label %.1f lines high, want a checkbox beside a one-line label", width, box, lines)
		}
	}
	tb.do(chromedp.Click(chromedp.ID("expiring-soon")))
	shown := eval[[]string](tb, `[...document.querySelectorAll("tbody tr[data-id]")].map(r => r.dataset.id)`)
	if !slices.Equal(shown, []string{soon.ID}) {
		t.Errorf("the filter shows %v, want only %s", shown, soon.ID)
	}
	if got := tb.text(".count"); !strings.HasPrefix(got, "1 of ") {
		t.Errorf("count %q, want 1 of …", got)
	}
}

// axeScript returns axe-core's browser build, installed with npm into the
// user's cache directory (never into the repository) on first use. Without
// npm or the network the test is skipped loudly, or fails when
// TOKEND_REQUIRE_BROWSER=1.
func axeScript(t *testing.T) string {
	t.Helper()
	const version = "4.14.1"
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "tokend-test", "axe-core-"+version)
	file := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(file); err != nil {
		out, err := exec.Command("npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", dir, "axe-core@"+version).CombinedOutput()
		if err != nil {
			msg := fmt.Sprintf("ACCESSIBILITY TEST SKIPPED: npm install axe-core@%s failed (%v): %s; set TOKEND_REQUIRE_BROWSER=1 to make this a failure", version, err, out)
			if os.Getenv("TOKEND_REQUIRE_BROWSER") == "1" {
				t.Fatal(msg)
			}
			fmt.Fprintf(os.Stderr, "\n*** %s ***\n\n", msg)
			t.Skip(msg)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConsoleAccessibility runs axe-core (WCAG 2 A and AA, and best
// practice) over the token table and the token form, in the light and the
// dark colour scheme.
func TestConsoleAccessibility(t *testing.T) {
	c := startConsole(t, nil)
	axe := axeScript(t)
	c.registerActions(t, "api::article.article.find", "api::article.article.create")
	c.createToken(t, map[string]any{"name": "Week", "lifespan": "604800s"})
	tok, _ := c.createToken(t, map[string]any{"name": "Custom", "type": "TOKEN_TYPE_CUSTOM", "permissions": []string{"api::article.article.find"}})
	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			tb := c.newTab(t, 1280)
			// The console's Content-Security-Policy forbids injected
			// scripts, rightly; the audit needs one.
			if _, err := chromedp.Call(tb.ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
				t.Fatal(err)
			}
			tb.emulate("prefers-color-scheme", scheme, "prefers-reduced-motion", "reduce")
			tb.signIn(c.root)
			for _, route := range []string{"", "#/new", "#/tokens/" + tok.ID} {
				if route != "" {
					tb.goTo(route)
				}
				eval[bool](tb, axe+"\n;true")
				violations := eval[[]map[string]any](tb, `axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})
					.then(r => r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))})))`)
				for _, v := range violations {
					t.Errorf("%s scheme, page %q: %s (%s) at %v", scheme, route, v["id"], v["help"], v["nodes"])
				}
			}
		})
	}
}

// TestConsoleActionPages: a catalog longer than one page of ListActions is
// read to its end, so an action on a later page can be granted.
func TestConsoleActionPages(t *testing.T) {
	c := startConsole(t, nil)
	filler := make([]string, 1000) // one full page of the console's page size
	for i := range filler {
		filler[i] = fmt.Sprintf("padding.filler.v%04d", i)
	}
	c.registerActions(t, filler...)
	c.registerActions(t, "zz.beyond.find") // sorts after every filler action
	tb := c.newTab(t, 1280)
	tb.signIn(c.root)
	_, id := tb.create(newToken{name: "Beyond the first page", duration: "7 days", typ: "Custom", groups: []string{"zz.beyond"}})
	tok, st := c.token(t, id)
	if st != 200 || !slices.Equal(tok.Permissions, []string{"zz.beyond.find"}) {
		t.Errorf("created token = %+v (HTTP %d), want the permission zz.beyond.find from the second page", tok, st)
	}
}

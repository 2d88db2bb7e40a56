// Package web serves tokend's admin console: the "API Tokens" settings page,
// a small set of static files (HTML, CSS, JavaScript modules and an SVG icon)
// embedded in the binary.
//
// The console holds no secret of its own and talks to nothing but tokend's
// public REST API under /v1/, with the admin token the user signs in with.
// What the API cannot tell it, the lifespan presets of this server, the
// handler publishes at /console/config.json. Every response carries a strict
// Content-Security-Policy: the page loads scripts, styles and images from its
// own origin only and makes requests to nothing else.
//
// The handler is safe for concurrent use.
package web

// Package bearer reads the bearer credential of an Authorization value the
// same way wherever tokend reads one: the service (admin credentials), the
// forward-auth route (the client's token) and the client package's
// middleware (a backend's callers).
package bearer

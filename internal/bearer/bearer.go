package bearer

import "strings"

// Token returns the token of an "Authorization: Bearer <token>" value, with
// surrounding spaces trimmed. The scheme is case-insensitive (RFC 9110). ok
// is false when v is not the bearer scheme or holds no token.
func Token(v string) (token string, ok bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	token = strings.TrimSpace(v[len(scheme):])
	return token, token != ""
}

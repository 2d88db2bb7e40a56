// Package actionid states the grammar of tokend's action ids once, for the
// service, which refuses ids that break it, and for the client package,
// which checks the ids a backend asks about before answering from its cache.
//
// An action id reads <subject>.<verb>: segments of letters, digits, '_',
// ':' and '-', separated by single dots, at least two of them, at most
// MaxLen characters in all (for example api::article.article.find).
package actionid

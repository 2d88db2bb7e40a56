// Package tokend holds what belongs to the whole module rather than one part:
// the OpenAPI description of the REST API, generated from proto/ by buf.
package tokend

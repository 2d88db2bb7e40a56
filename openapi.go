// Package tokend holds what belongs to the whole module rather than one part:
// the OpenAPI description of the REST API, generated from proto/ by buf.
package tokend

import _ "embed"

// OpenAPI is the OpenAPI v2 (Swagger) description of the REST gateway,
// served at /openapi.json.
//
//go:embed gen/openapiv2/tokend.swagger.json
var OpenAPI []byte

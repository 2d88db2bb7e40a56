package tokend

import _ "embed"

// OpenAPI is the OpenAPI v2 (Swagger) description of the REST gateway,
// served at /openapi.json.
//
//go:embed gen/openapiv2/tokend.swagger.json
var OpenAPI []byte

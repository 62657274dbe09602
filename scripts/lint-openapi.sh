#!/usr/bin/env bash
# Lints the admin API's OpenAPI document (src/Proxy.Enforcement/Admin/openapi.json) with Redocly's
# recommended rules (redocly.yaml); needs Node.js and npm's registry (npx fetches @redocly/cli).
# The suite checks the document against the API itself (AdminApiTests.OpenApiDocument_*).
set -euo pipefail
cd "$(dirname "$0")/.."
npx --yes @redocly/cli@2 lint --config redocly.yaml src/Proxy.Enforcement/Admin/openapi.json

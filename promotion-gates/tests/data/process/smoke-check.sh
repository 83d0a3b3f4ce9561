#!/bin/sh
# Post-deployment smoke check, as a release pipeline runs one after deploying a stage.
# Usage: smoke-check.sh <region> [exit-code]
# Reads the gate's built-in parameters from the environment; with a non-zero exit code it
# reports a failing health check on stderr and exits with that code.
set -eu
region="${1:?usage: smoke-check.sh <region> [exit-code]}"
code="${2:-0}"
echo "smoke check of ${PROMOTION_RELEASE_NAME} (commit ${PROMOTION_COMMIT}) in stage ${PROMOTION_STAGE}, region ${region}"
echo "release ${PROMOTION_RELEASE_ID}"
if [ "$code" -ne 0 ]; then
  echo "GET https://${region}.example.com/healthz: 503 Service Unavailable" >&2
  echo "smoke check failed in ${region}" >&2
  exit "$code"
fi
echo "GET https://${region}.example.com/healthz: 200 OK"

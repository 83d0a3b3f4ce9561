#!/bin/sh
# Uses a deploy token the way a real check does (an authorization header) and, as careless
# scripts do, prints it to stdout and stderr. Fails when the token is missing.
set -eu
: "${DEPLOY_TOKEN:?DEPLOY_TOKEN is not set}"
echo "curl -H 'Authorization: Bearer ${DEPLOY_TOKEN}' https://deploy.example.com/api/status"
echo "debug: using token ${DEPLOY_TOKEN}" >&2
echo "status: ready"

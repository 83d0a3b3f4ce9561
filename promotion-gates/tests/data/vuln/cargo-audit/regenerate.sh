#!/usr/bin/env bash
# Regenerates the cargo-audit samples with the real tool, offline, against the six RustSec
# advisories in advisory-db/ (copied from github.com/rustsec/advisory-db, CC0-1.0).
#
#   cargo install cargo-audit --locked   # 0.22.2 produced the committed files
#   bash tests/data/vuln/cargo-audit/regenerate.sh
#
# cargo-audit exits 1 when it finds vulnerabilities; that is expected here.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/advisory-db" "$work/db"
for project in vulnerable clean; do
  mkdir -p "$work/$project/src"
  cp "$here/project-$project/Cargo.toml.in" "$work/$project/Cargo.toml"
  cp "$here/project-$project/Cargo.lock" "$work/$project/Cargo.lock"
  echo 'fn main() {}' > "$work/$project/src/main.rs"
done
(cd "$work/vulnerable" && cargo audit --db "$work/db" --no-fetch --json > "$here/vulnerable.json")
(cd "$work/vulnerable" && cargo audit --db "$work/db" --no-fetch --format sarif > "$here/vulnerable.sarif")
(cd "$work/clean" && cargo audit --db "$work/db" --no-fetch --json > "$here/clean.json")
echo "regenerated; the broken/ variants are derived by hand from vulnerable.json (see ../README.md)"

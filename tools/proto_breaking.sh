#!/usr/bin/env bash
# buf breaking against main. When the working tree's proto/ equals main's (as in
# CI on a clean clone of main), compare main against the state before its latest
# proto change on main's own line (--first-parent: a merged branch's inner history is not
# main's), so a breaking change that just landed still fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.venv/bin/buf

if ! git rev-parse --verify -q main >/dev/null; then
  echo "proto-check: no main branch yet; buf breaking skipped"
  exit 0
fi
if ! git diff --quiet main -- proto || [ -n "$(git ls-files --others --exclude-standard proto)" ]; then
  echo "proto-check: buf breaking against main"
  exec "$BUF" breaking --against '.git#branch=main'
fi
last=$(git rev-list -1 --first-parent main -- proto)
if [ -z "$last" ] || ! git rev-parse --verify -q "$last^" >/dev/null || [ -z "$(git ls-tree "$last^" proto)" ]; then
  echo "proto-check: main has no earlier commit holding proto/; buf breaking skipped"
  exit 0
fi
echo "proto-check: buf breaking against $(git rev-parse --short "$last^") (before main's latest proto change)"
exec "$BUF" breaking --against ".git#ref=$(git rev-parse "$last^")"

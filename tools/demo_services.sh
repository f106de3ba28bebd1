#!/usr/bin/env bash
# `make demo-services`: Esper's services, shown with the tools an operator would use.
# Karn is started as a real gRPC server (`esper serve karn`), explored with grpcurl
# through server reflection (no .proto files needed), and stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="$PWD/.venv/bin"
WORK="$(mktemp -d -t esper-demo.XXXXXX)"
SERVER_PID=""

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

heading() {
  printf '\n\033[1m==== %s ====\033[0m\n' "$*"
}

# Start `esper serve NAME` on a free port; sets SERVER_PID and ADDRESS.
start_server() {
  local name="$1" port_file="$WORK/$1.port"
  "$BIN/esper" serve "$name" --port 0 --port-file "$port_file" 2>"$WORK/$name.log" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    [ -s "$port_file" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "demo: esper serve $name exited before serving; its log:" >&2
      cat "$WORK/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$port_file" ] || { echo "demo: esper serve $name did not start in 60 s" >&2; exit 1; }
  ADDRESS="127.0.0.1:$(cat "$port_file")"
  echo "esper serve $name: pid $SERVER_PID, listening on $ADDRESS"
}

grpcurl() {
  "$BIN/grpcurl" -plaintext "$@"
}

# Print a ListTemplatesResponse (grpcurl JSON on stdin) as a table.
summarise_templates() {
  "$BIN/python" -c "$(cat <<'PY'
import json, sys
page = json.load(sys.stdin)
for t in page.get("templates", []):
    tags = ", ".join(t.get("tags", []))
    print(f"  {t['templateId']:<30} {t.get('tier', ''):<28} {t.get('inputKind', ''):<20}"
          f" {t.get('parameterEstimate', '0'):>9} params  [{tags}]")
token = page.get("nextPageToken", "") or "(none)"
print(f"  total_size: {page.get('totalSize', 0)}   next_page_token: {token}")
PY
)"
}

# Page through ListTemplates with page_size $1; prints how many templates and pages it took.
count_all_templates() {
  local page_size="$1" token="" pages=0 count=0 page
  while :; do
    page="$(grpcurl -d "{\"page_size\": $page_size, \"page_token\": \"$token\"}" \
      "$ADDRESS" esper.leyline.v1.KarnService/ListTemplates)"
    pages=$((pages + 1))
    count=$((count + $(printf '%s' "$page" | "$BIN/python" -c 'import json,sys; print(len(json.load(sys.stdin).get("templates", [])))')))
    token="$(printf '%s' "$page" | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin).get("nextPageToken", ""))')"
    [ -n "$token" ] || break
  done
  echo "  $count templates in $pages pages of up to $page_size"
}

demo_karn() {
  heading "Karn: esper serve karn --port 0 --port-file FILE"
  start_server karn

  heading "grpcurl list  (server reflection: services this server hosts)"
  grpcurl "$ADDRESS" list

  heading "grpcurl describe esper.leyline.v1.KarnService"
  grpcurl "$ADDRESS" describe esper.leyline.v1.KarnService

  heading "grpc.health.v1.Health/Check"
  grpcurl -d '{"service": "esper.leyline.v1.KarnService"}' "$ADDRESS" grpc.health.v1.Health/Check

  heading "ListTemplates {\"page_size\": 5}  (first page)"
  grpcurl -d '{"page_size": 5}' "$ADDRESS" esper.leyline.v1.KarnService/ListTemplates | summarise_templates

  heading "ListTemplates, every page (page_size 5, following next_page_token)"
  count_all_templates 5

  heading "ListTemplates {\"tier\": \"BLUEPRINT_TIER_ADVERSARIAL\", \"page_size\": 3}"
  grpcurl -d '{"tier": "BLUEPRINT_TIER_ADVERSARIAL", "page_size": 3}' \
    "$ADDRESS" esper.leyline.v1.KarnService/ListTemplates | summarise_templates

  heading "GetTemplate {\"template_id\": \"no_such_template\"}  (expect NotFound / TEMPLATE_NOT_FOUND)"
  local answer
  if answer="$(grpcurl -d '{"template_id": "no_such_template"}' \
    "$ADDRESS" esper.leyline.v1.KarnService/GetTemplate 2>&1)"; then
    echo "$answer"
    echo "demo: expected NotFound for an unknown template id" >&2
    exit 1
  fi
  echo "$answer"
  grep -q "Code: NotFound" <<<"$answer" || { echo "demo: expected Code: NotFound" >&2; exit 1; }

  heading "ListTemplates {\"page_size\": 5000}  (expect InvalidArgument naming page_size)"
  grpcurl -d '{"page_size": 5000}' "$ADDRESS" esper.leyline.v1.KarnService/ListTemplates 2>&1 || true

  heading "Stopping Karn (SIGTERM to pid $SERVER_PID; health goes NOT_SERVING, then a graceful stop)"
  stop_server
  echo "stopped; server log:"
  sed 's/^/  /' "$WORK/karn.log"
}

demo_karn
heading "demo finished"

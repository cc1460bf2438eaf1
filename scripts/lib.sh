# Shared by scripts/test, scripts/fresh-state, scripts/fuzz-api and .ci/run (sourced, not run).
#
# Every failure says which step failed and why, on stderr: `step NAME` names what runs next and
# an ERR trap reports the step, the command and its exit status. Helpers here never depend on
# something an earlier run left behind: a listing that finds nothing is not an error.

set -euo pipefail

SCRIPT_NAME=${SCRIPT_NAME:-$(basename "$0")}
CURRENT_STEP="start"
PG_ADMIN_URL=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

step() { CURRENT_STEP=$*; }
fail() { printf '%s: step "%s" failed: %s\n' "$SCRIPT_NAME" "$CURRENT_STEP" "$*" >&2; exit 1; }
on_error() {
  local status=$? line=$1 command=$2
  printf '%s: step "%s" failed (exit %s) at line %s: %s\n' \
    "$SCRIPT_NAME" "$CURRENT_STEP" "$status" "$line" "$command" >&2
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
set -o errtrace

# Fails with what to install when a command is missing.
require() {
  local command=$1 hint=$2
  command -v "$command" >/dev/null 2>&1 || fail "$command is not installed ($hint)"
}

# Installs the Debian packages whose commands are missing: "command:package" pairs. The test
# suite needs them (the sandbox is bubblewrap; lock files are updated by npm).
ensure_commands() {
  step "install missing tools"
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get to install them"
  echo "installing ${missing[*]} (apt-get)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

start_postgres() {
  step "start Postgres"
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return; fi
  require pg_ctlcluster "apt-get install postgresql"
  local cluster
  cluster=$(ls /etc/postgresql 2>/dev/null | head -n1 || true)
  [ -n "$cluster" ] || fail "Postgres is down and no cluster is configured under /etc/postgresql"
  echo "starting Postgres $cluster"
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && return; sleep 1; done
  fail "Postgres did not accept connections on 127.0.0.1:5432 within 30 s"
}

start_rabbitmq() {
  step "start RabbitMQ"
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return; fi
  require rabbitmq-server "apt-get install rabbitmq-server"
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && return; sleep 1; done
  fail "RabbitMQ did not accept connections on 127.0.0.1:5672 within 60 s"
}

# Names of the databases matching a LIKE pattern (none is fine).
databases_like() {
  psql "$PG_ADMIN_URL" -AtXc "SELECT datname FROM pg_database WHERE datname LIKE '$1'" </dev/null
}

# Drops every database whose name matches a LIKE pattern; prints how many it dropped.
drop_databases_like() {
  local pattern=$1 count=0 db names
  names=$(databases_like "$pattern")
  for db in $names; do
    psql "$PG_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" </dev/null >/dev/null
    count=$((count + 1))
  done
  echo "$count"
}

# Queue (or exchange) names of the default vhost matching an extended regex (none is fine).
# rabbitmqctl reads stdin, hence </dev/null; -s drops the table header.
broker_names() {
  local kind=$1 regex=$2
  { rabbitmqctl -s "list_$kind" name </dev/null || fail "rabbitmqctl list_$kind failed"; } |
    { grep -E "$regex" || true; }
}

# Deletes the queues and exchanges of the default vhost whose names match the regex; prints
# how many queues it deleted. rabbitmqctl has no delete_exchange: the broker function does it.
delete_broker_names() {
  local regex=$1 count=0 name queues exchanges
  queues=$(broker_names queues "$regex")
  exchanges=$(broker_names exchanges "$regex")
  for name in $queues; do
    rabbitmqctl -q delete_queue "$name" </dev/null >/dev/null
    count=$((count + 1))
  done
  for name in $exchanges; do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$name\">>), false, <<\"cleanup\">>)." </dev/null >/dev/null
  done
  echo "$count"
}

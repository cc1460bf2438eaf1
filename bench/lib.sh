# Shared set-up for the bench/ scripts (sourced, not run).
#
# Every script gets its own database (bench_<id>) and its own AMQP prefix (bench-<id>), so
# benchmarks can run beside the test suite on the same Postgres and RabbitMQ; `bench_cleanup`
# (installed as an EXIT trap) kills the processes the script started, drops the database and
# deletes the queues and exchanges of its prefix.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
BIN=${REMEDIATOR_BIN:-$TARGET_DIR/release/remediator}
PG="-h 127.0.0.1 -p 5432 -U postgres"
RID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
BENCH_DB=bench_$RID
BENCH_PREFIX=bench-$RID
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-$RID.XXXX")
BENCH_PIDS=()
trap 'bench_cleanup' EXIT
trap 'exit 130' INT TERM

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
export REMEDIATOR__AMQP__PREFIX=$BENCH_PREFIX
export REMEDIATOR__AUTH__JWT_SECRET="bench-secret-$RID-0123456789abcdef0123456789"
export REMEDIATOR__WORKER__METRICS_LISTEN=127.0.0.1:0
export REMEDIATOR__GIT__ALLOW_HTTP=true
# Everything in a bench runs on loopback, which the egress policy refuses by default.
export REMEDIATOR__SECURITY__ALLOW_PRIVATE_NETWORKS=true
# Benches open more requests per repository than the default cap; the rate limit would
# measure itself instead of the intake.
export REMEDIATOR__WORKER__MAX_OPEN_PRS_PER_REPOSITORY=0
export REMEDIATOR__INTAKE__RATE_LIMIT_PER_MINUTE=0
export RUST_LOG=${RUST_LOG:-info} # as deployed: the log lines are part of the cost

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Starts a background process, remembered for the cleanup. Usage: spawn NAME cmd args...
# The pid is left in $SPAWNED; output goes to $BENCH_TMP/NAME.log.
spawn() {
  local name=$1; shift
  "$@" >"$BENCH_TMP/$name.log" 2>&1 &
  SPAWNED=$!
  BENCH_PIDS+=("$SPAWNED")
}

bench_cleanup() {
  local status=$?
  set +e
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  [[ -n ${BENCH_DB_CREATED:-} ]] &&
    psql $PG -q -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1
  rabbitmqctl -q list_queues name 2>/dev/null | grep -F "$BENCH_PREFIX." |
    while read -r queue; do rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1; done
  # rabbitmqctl reads stdin, hence </dev/null; it has no delete_exchange, the broker function does it.
  rabbitmqctl -q list_exchanges name 2>/dev/null | grep -F "$BENCH_PREFIX." |
    while read -r exchange; do
      rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"bench\">>)." </dev/null >/dev/null 2>&1
    done
  [[ -n ${BENCH_KEEP_TMP:-} ]] || rm -rf "$BENCH_TMP"
  exit "$status"
}

# Creates the database, applies the migrations, installs the cleanup trap.
bench_setup() {
  [[ -x $BIN ]] || die "$BIN not found; run: cargo build --release (bench/all does it)"
  createdb $PG "$BENCH_DB"
  BENCH_DB_CREATED=1
  "$BIN" migrate >/dev/null
}

psql_db() { psql $PG -d "$BENCH_DB" -v ON_ERROR_STOP=1 -qAtX "$@"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until a TCP port accepts connections.
wait_port() {
  local port=$1
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  die "nothing listens on port $port"
}

# Messages ready + unacknowledged in a queue.
queue_depth() {
  rabbitmqctl -q list_queues name messages 2>/dev/null | awk -v q="$1" '$1 == q { print $2 }'
}

# utime+stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
# name in field 2 may hold spaces, so count from the closing parenthesis).
cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
CLK_TCK=$(getconf CLK_TCK)

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else 'inf')" "$1" "$2"; }

# Prints PASS/FAIL for "value op limit".
verdict() { python3 -c "import sys, operator as o; v, op, l = float(sys.argv[1]), sys.argv[2], float(sys.argv[3]); print('PASS' if {'<=': o.le, '>=': o.ge, '==': o.eq}[op](v, l) else 'FAIL')" "$1" "$2" "$3"; }

# Creates bare repository $1 (path ending in .git) with $2 files and $3 commits on main, packed
# as a forge would serve it.
make_repo() {
  local bare=$1 files=$2 commits=$3
  git init -q --bare -b main "$bare"
  python3 "$BENCH_DIR/make_repo.py" "$files" "$commits" | git -C "$bare" fast-import --quiet --done
  git -C "$bare" repack -adq
  git -C "$bare" config http.receivepack true
}

# Starts the smart-HTTP git server on a free port over directory $1; sets $GIT_PORT.
start_git_server() {
  GIT_PORT=$(free_port)
  spawn git-server python3 "$BENCH_DIR/git_server.py" "$1" "$GIT_PORT"
  GIT_SERVER_PID=$SPAWNED
  wait_port "$GIT_PORT"
}

# Starts the fake LLM answering after $1 seconds; sets $LLM_PORT.
start_fake_llm() {
  LLM_PORT=$(free_port)
  spawn fake-llm python3 "$BENCH_DIR/fake_llm.py" "$LLM_PORT" "$1"
  wait_port "$LLM_PORT"
}

# Writes the worker's config file (fake LLM + a plain_git forge for the git server) and sets
# REMEDIATOR_CONFIG to it.
write_worker_config() {
  printf 'bench-token\n' >"$BENCH_TMP/forge-token"
  cat >"$BENCH_TMP/remediator.toml" <<TOML
[llm]
base_url = "http://127.0.0.1:$LLM_PORT/v1"
model = "bench-model"

[[forges]]
host = "127.0.0.1:$GIT_PORT"
kind = "plain_git"
token_file = "$BENCH_TMP/forge-token"
TOML
  export REMEDIATOR_CONFIG=$BENCH_TMP/remediator.toml
  export REMEDIATOR__WORKER__PATCHER=llm
  export REMEDIATOR__WORKER__SCRATCH_DIR=$BENCH_TMP/scratch
}

BENCH_ORG=0b7e3a52-4a0e-4c55-9d0c-3f1c6f0d2a11

# Inserts one organisation and, for k in 1..$2, a project whose repository is ${1%.git}-k.git
# (see fan_out) with one AFFECTED assessment on lodash. One repository per job: jobs of one
# package in one project share a pull request and take turns at its fix lock (by design), which
# would measure that queue instead of the worker. Assessment k has id md5('a' || k).
seed_jobs() {
  local url=$1 count=$2
  psql_db <<SQL
INSERT INTO organizations (id, name) VALUES ('$BENCH_ORG', 'Bench Org') ON CONFLICT DO NOTHING;
INSERT INTO projects (id, organization_id, name, repository_url)
SELECT md5('$url' || k)::uuid, '$BENCH_ORG', 'bench-app-' || k, regexp_replace('$url', '\.git\$', '') || '-' || k || '.git'
  FROM generate_series(1, $count) k;
INSERT INTO findings (id, project_id, vulnerability_id, severity, summary, package_name, ecosystem,
                      installed_version, fixed_versions)
SELECT md5('f' || k)::uuid, md5('$url' || k)::uuid, 'GHSA-bnch-' || k || '-$RID', 'HIGH',
       'Prototype pollution in lodash', 'lodash', 'npm', '4.17.20', ARRAY['4.17.21']
  FROM generate_series(1, $count) k;
INSERT INTO assessments (id, finding_id, status)
SELECT md5('a' || k)::uuid, md5('f' || k)::uuid, 'ASSESSMENT_STATUS_AFFECTED'
  FROM generate_series(1, $count) k;
SQL
}

# Makes $2 repositories NAME-1.git .. NAME-$2.git beside bare repository $1 (NAME.git), each
# sharing its objects (git clone --shared), so every job pushes to a repository of its own.
fan_out() {
  local bare=$1 count=$2 k
  for k in $(seq "$count"); do
    git clone -q --bare --shared "$bare" "${bare%.git}-$k.git"
  done
}

# Starts an intake (with its relay) for triggering jobs; sets $INTAKE_PORT and $TOKEN.
start_intake() {
  INTAKE_PORT=$(free_port)
  spawn intake "$BIN" intake --listen "127.0.0.1:$INTAKE_PORT"
  wait_port "$INTAKE_PORT"
  TOKEN=$("$BIN" token --org "$BENCH_ORG")
}

# POSTs assessment k; prints the operation id.
trigger() {
  curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"assessment_id\":\"$(psql_db -c "SELECT md5('a' || $1)::uuid")\"}" \
    "http://127.0.0.1:$INTAKE_PORT/v1/findings/auto-remediation" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["operation_id"])'
}

# Waits until no operation is PENDING or RUNNING (at most $1 seconds).
wait_all_done() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    [[ $(psql_db -c "SELECT count(*) FROM operations WHERE status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING')") == 0 ]] && return 0
    sleep 0.05
  done
  die "operations still unfinished after $1 s"
}

# CPU ticks of a process and every child it waited for (fields 14-17: utime, stime, cutime,
# cstime), for servers that run a process per request.
tree_cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 + $14 + $15 }'
}

# Enqueues the jobs of assessments $1..$2 at once, as the intake's transaction does (operation,
# its event, outbox row); the intake's relay publishes them at its next poll.
enqueue_sql() {
  psql_db <<SQL
BEGIN;
CREATE TEMP TABLE new_ops ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, md5('a' || k)::uuid AS assessment, f.project_id
  FROM generate_series($1, $2) k JOIN findings f ON f.id = md5('f' || k)::uuid;
INSERT INTO operations (id, organization_id, kind, status, resource_type, resource_id, project_id)
SELECT id, '$BENCH_ORG', 'auto_remediation', 'ASYNC_OPERATION_STATUS_PENDING', 'assessment',
       assessment, project_id FROM new_ops;
INSERT INTO operation_events (operation_id, kind, status)
SELECT id, 'status', 'ASYNC_OPERATION_STATUS_PENDING' FROM new_ops;
INSERT INTO outbox (operation_id, payload)
SELECT id, jsonb_build_object('type', 'remediation.v1', 'operation_id', id::text, 'attempt', 1,
                              'trace_id', md5(id::text)) FROM new_ops;
COMMIT;
SQL
}

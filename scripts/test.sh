#!/usr/bin/env bash
# The README's test command. Installs (Debian, as root) and starts what the tests need (PostgreSQL, a PGlite pgvector
# stand-in, RabbitMQ, Redis, Chromium) on loopback in a temp folder,
# exports their addresses, runs every test in the solution once, and stops the services again — also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() { [ "$(id -u)" = 0 ]; }

apt_updated=0
apt_install() {
  as_root || { log "missing $* and not root: install it yourself"; exit 1; }
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

WORK=$(mktemp -d /tmp/sutazai-test.XXXXXX)
chmod 755 "$WORK"
PIDS_TO_STOP=()
cleanup() {
  local rc=$?
  for pid in "${PIDS_TO_STOP[@]}"; do
    log "stopping PID $pid"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${RMQ_PID:-}" ]; then
    log "stopping RabbitMQ"
    rabbitmqctl -n "$RABBITMQ_NODENAME" shutdown >/dev/null 2>&1 || kill "$RMQ_PID" 2>/dev/null || true
    epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
  fi
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    log "stopping PostgreSQL"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

# --- Native libraries: llama.cpp's CPU backend (LLamaSharp.Backend.Cpu) needs OpenMP ----------------------------------
if ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; then
  log "installing libgomp1 (OpenMP runtime for llama.cpp)"
  apt_install libgomp1
fi

# --- The agent sandbox: bubblewrap, and for its optional network slirp4netns, nftables, iproute2 ---------------------
missing=()
[ -x /usr/bin/bwrap ] || missing+=(bubblewrap)
[ -x /usr/bin/slirp4netns ] || missing+=(slirp4netns)
[ -x /usr/sbin/nft ] || missing+=(nftables)
[ -x /usr/sbin/ip ] || missing+=(iproute2)
[ -x /usr/bin/prlimit ] && [ -x /usr/bin/nsenter ] && [ -x /usr/bin/unshare ] || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (agent sandbox)"
  apt_install "${missing[@]}"
fi

# --- Chromium for the browser tests (tests/Sutazai.E2E drive Debian's build; Playwright downloads nothing) ----------
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (browser tests)"
  apt_install chromium
fi

# --- tmux: the CLI's chat test drives `sutazai chat` in a real pseudo-terminal -------------------------------------
if ! command -v tmux >/dev/null 2>&1; then
  log "installing tmux (terminal tests)"
  apt_install tmux
fi

# --- deploy/ checks: nginx -t, promtool (Debian prometheus), systemd-analyze verify -------------------------------
deploy_tools=()
command -v nginx >/dev/null 2>&1 || deploy_tools+=(nginx)
command -v promtool >/dev/null 2>&1 || deploy_tools+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || deploy_tools+=(systemd)
if [ ${#deploy_tools[@]} -gt 0 ]; then
  log "installing ${deploy_tools[*]} (deploy/ checks)"
  apt_install "${deploy_tools[@]}"
fi

# --- PostgreSQL --------------------------------------------------------------------------------------------------
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  log "installing PostgreSQL"
  apt_install postgresql
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
PG_PORT=$(free_port)
PG_DATA="$WORK/pg"
mkdir -p "$PG_DATA"
if as_root; then chown postgres:postgres "$PG_DATA"; RUN_PG=(runuser -u postgres --); else RUN_PG=(); fi
"${RUN_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust --no-sync -U postgres -E UTF8 >/dev/null
"${RUN_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$PG_DATA/server.log" \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
export SUTAZAI_TEST_POSTGRES="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"
log "PostgreSQL on 127.0.0.1:$PG_PORT"

# --- pgvector stand-in: PGlite over the Postgres wire protocol (Debian has no pgvector) ---------------------------
# Installed once with npm into .cache/pglite (git-ignored); one in-memory database per run.
PGLITE_VERSIONS=(@electric-sql/pglite@0.5.14 @electric-sql/pglite-socket@0.2.17 @electric-sql/pglite-pgvector@0.0.15)
PGLITE_DIR="$PWD/.cache/pglite"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs and npm (for the PGlite pgvector stand-in)"
  apt_install nodejs npm
fi
if [ "$(cat "$PGLITE_DIR/.installed" 2>/dev/null || true)" != "${PGLITE_VERSIONS[*]}" ]; then
  log "installing ${PGLITE_VERSIONS[*]} into .cache/pglite"
  mkdir -p "$PGLITE_DIR"
  [ -f "$PGLITE_DIR/package.json" ] || echo '{"private": true}' > "$PGLITE_DIR/package.json"
  npm install --prefix "$PGLITE_DIR" --save-exact --no-audit --no-fund --loglevel=error "${PGLITE_VERSIONS[@]}" >/dev/null
  echo "${PGLITE_VERSIONS[*]}" > "$PGLITE_DIR/.installed"
fi
PGLITE_PORT=$(free_port)
(cd "$PGLITE_DIR" && exec node node_modules/@electric-sql/pglite-socket/dist/scripts/server.js --host 127.0.0.1 \
  --port "$PGLITE_PORT" --db memory:// --extensions @electric-sql/pglite-pgvector:vector --max-connections 10) \
  >"$WORK/pglite.log" 2>&1 &
PIDS_TO_STOP+=($!)
for _ in $(seq 1 120); do
  if ! kill -0 "${PIDS_TO_STOP[-1]}" 2>/dev/null; then log "PGlite exited:"; cat "$WORK/pglite.log" >&2; exit 1; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PGLITE_PORT") 2>/dev/null; then break; fi
  sleep 0.5
done
(exec 3<>"/dev/tcp/127.0.0.1/$PGLITE_PORT") 2>/dev/null || { log "PGlite did not open port $PGLITE_PORT"; cat "$WORK/pglite.log" >&2; exit 1; }
export SUTAZAI_TEST_PGVECTOR="Host=127.0.0.1;Port=$PGLITE_PORT;Username=postgres;Database=postgres;SSL Mode=Disable;Maximum Pool Size=4"
log "PGlite (pgvector) on 127.0.0.1:$PGLITE_PORT"

# --- RabbitMQ (Debian rabbitmq-server, on loopback, every file inside $WORK) ------------------------------------------
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  log "installing rabbitmq-server"
  # Without a policy-rc.d the package's postinst tries to start the service and fails the install.
  if as_root && [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi
  apt_install rabbitmq-server
fi
RMQ="$WORK/rabbitmq"
mkdir -p "$RMQ/home" "$RMQ/mnesia" "$RMQ/log"
RMQ_PORT=$(free_port)
RMQ_DIST_PORT=$(free_port)
# Exported before any Erlang CLI runs: without it rabbitmqctl/epmd start a lasting epmd on 4369.
export ERL_EPMD_PORT=$(free_port) ERL_EPMD_ADDRESS=127.0.0.1
python3 -c 'import secrets; print(secrets.token_hex(20).upper(), end="")' > "$RMQ/home/.erlang.cookie"
chmod 400 "$RMQ/home/.erlang.cookie"
printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users.guest = true\n' "$RMQ_PORT" > "$RMQ/rabbitmq.conf"
echo '[].' > "$RMQ/enabled_plugins"
RABBITMQ_NODENAME="sutazai-test-$$@localhost"
rabbitmq_env() {
  env HOME="$RMQ/home" RABBITMQ_NODENAME="$RABBITMQ_NODENAME" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$RMQ_PORT" RABBITMQ_DIST_PORT="$RMQ_DIST_PORT" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
    RABBITMQ_MNESIA_BASE="$RMQ/mnesia" RABBITMQ_LOG_BASE="$RMQ/log" RABBITMQ_CONFIG_FILE="$RMQ/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ/enabled_plugins" RABBITMQ_CONF_ENV_FILE=/dev/null ERL_CRASH_DUMP="$RMQ/erl_crash.dump" "$@"
}
rabbitmqctl() { rabbitmq_env /usr/lib/rabbitmq/bin/rabbitmqctl "$@"; }
rabbitmq_env setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$RMQ/server.out" 2>&1 &
RMQ_PID=$!
for _ in $(seq 1 180); do
  if ! kill -0 "$RMQ_PID" 2>/dev/null; then log "RabbitMQ exited:"; tail -n 40 "$RMQ/server.out" >&2; exit 1; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null; then break; fi
  sleep 0.5
done
rabbitmq_env /usr/lib/rabbitmq/bin/rabbitmq-diagnostics -q -n "$RABBITMQ_NODENAME" check_port_connectivity >/dev/null \
  || { log "RabbitMQ did not become ready on port $RMQ_PORT"; tail -n 40 "$RMQ/server.out" >&2; exit 1; }
export SUTAZAI_TEST_RABBITMQ="amqp://guest:guest@127.0.0.1:$RMQ_PORT/"
log "RabbitMQ on 127.0.0.1:$RMQ_PORT ($RABBITMQ_NODENAME)"

# --- Redis (Debian redis-server, on loopback, no persistence) ---------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server"
  apt_install redis-server
fi
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' --appendonly no --daemonize no \
  >"$WORK/redis/server.out" 2>&1 &
PIDS_TO_STOP+=($!)
for _ in $(seq 1 100); do
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping | grep -q PONG || { log "Redis did not start"; cat "$WORK/redis/server.out" >&2; exit 1; }
export SUTAZAI_TEST_REDIS="127.0.0.1:$REDIS_PORT"
log "Redis on 127.0.0.1:$REDIS_PORT"

# --- Tests ---------------------------------------------------------------------------------------------------------
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
dotnet tool restore >/dev/null
dotnet build Sutazai.slnx -c Release -nologo -clp:ErrorsOnly
# The published output as users deploy it: tests/Sutazai.E2E/PublishedTests start it from a foreign working folder.
dotnet publish src/Sutazai.Server -c Release --no-build -o "$WORK/published" -nologo -clp:ErrorsOnly >/dev/null
export SUTAZAI_TEST_PUBLISHED="$WORK/published"
set +e
dotnet test Sutazai.slnx -c Release --no-build --nologo --logger "console;verbosity=normal" "$@" 2>&1 | tee "$WORK/test.log"
status=${PIPESTATUS[0]}
set -e
# The plain closing line CI reads: totals over every test assembly.
python3 - "$WORK/test.log" <<'PY'
import re, sys
counts = {"Passed": 0, "Failed": 0, "Skipped": 0}
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.match(r"^\s+(Passed|Failed|Skipped):\s+(\d+)\s*$", line)
    if m:
        counts[m.group(1)] += int(m.group(2))
# Each failed test with the first lines of its message and stack, so a CI log's tail says what broke.
failures, current = [], None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"^\s+Failed (\S.*?)(?: \[[^\]]*\])?\s*$", line)
    if m:
        current = [m.group(1)]
        failures.append(current)
    elif current is not None:
        if re.match(r"^\s+(Passed|Skipped|Failed) ", line) or line.startswith("[xUnit") or len(current) > 14:
            current = None
        elif line.strip():
            current.append("    " + line.strip()[:1500])
if failures:
    print("Failed tests:")
    for f in failures:
        print("  " + f[0])
        for l in f[1:]:
            print(l)
print(f"{counts['Passed']} passed, {counts['Failed']} failed, {counts['Skipped']} skipped")
PY
exit "$status"

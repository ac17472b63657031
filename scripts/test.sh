#!/usr/bin/env bash
# The README's test command. Installs (Debian, as root) and starts what the tests need on loopback in a temp folder,
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

# --- Tests ---------------------------------------------------------------------------------------------------------
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
dotnet tool restore >/dev/null
dotnet build Sutazai.slnx -c Release -nologo -clp:ErrorsOnly
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
print(f"{counts['Passed']} passed, {counts['Failed']} failed, {counts['Skipped']} skipped")
PY
exit "$status"

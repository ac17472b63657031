#!/usr/bin/env bash
# Cold start, side by side: the published SutazAI server against an empty ASP.NET Core app (`dotnet new web` with a
# /health route), each published Release both ways (portable, and for linux-x64, which is ReadyToRun) and started from
# a foreign working directory, N times. Prints time from process start to the first 200 on /health (liveness), to the
# first 200 on /health/ready (warmed up: migrated), and the idle working set 5 s after that.
#   bench/coldstart.sh [runs=5]
set -euo pipefail
RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/sutazai-coldstart.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

dotnet publish "$ROOT/src/Sutazai.Server" -c Release -o "$WORK/sutazai" -nologo -clp:ErrorsOnly >/dev/null
dotnet publish "$ROOT/src/Sutazai.Server" -c Release -r linux-x64 -o "$WORK/sutazai-r2r" -nologo -clp:ErrorsOnly >/dev/null
mkdir -p "$WORK/empty-src" && (cd "$WORK/empty-src" && dotnet new web -n Empty -o . >/dev/null 2>&1)
sed -i 's|app.MapGet("/", () => "Hello World!");|app.MapGet("/", () => "Hello World!");\napp.MapGet("/health", () => "Healthy");|' "$WORK/empty-src/Program.cs"
dotnet publish "$WORK/empty-src" -c Release -o "$WORK/empty" -nologo -clp:ErrorsOnly >/dev/null
dotnet publish "$WORK/empty-src" -c Release -r linux-x64 -p:PublishReadyToRun=true -o "$WORK/empty-r2r" -nologo -clp:ErrorsOnly >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# measure <dll> <fresh:yes|no> → "health_ms ready_ms rss_mb" (ready_ms is 0 for the empty app, which has no /health/ready)
measure() {
  local dll=$1 fresh=$2 p data
  p=$(port)
  data="$WORK/data-$(basename "$(dirname "$dll")")"
  [ "$fresh" = yes ] && rm -rf "$data"
  mkdir -p "$WORK/elsewhere"
  local start end ready=0 pid
  start=$(date +%s%N)
  (cd "$WORK/elsewhere" && exec dotnet "$dll" --urls "http://127.0.0.1:$p" --Sutazai:DataDir="$data" --Sutazai:Inference:Ollama:AutoDetect=false >/dev/null 2>&1) &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$p/health"; do sleep 0.01; done
  end=$(date +%s%N)
  if [[ $dll == */sutazai.dll ]]; then
    until curl -fs -o /dev/null "http://127.0.0.1:$p/health/ready"; do sleep 0.01; done
    ready=$(( ($(date +%s%N) - start) / 1000000 ))
  fi
  sleep 5
  local rss
  rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(( (end - start) / 1000000 )) $ready $rss"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }

apps=(empty empty-r2r sutazai-fresh sutazai sutazai-r2r-fresh sutazai-r2r)
declare -A ms rdy rss
for app in "${apps[@]}"; do
  times=(); readies=(); mems=()
  for _ in $(seq 1 "$RUNS"); do
    case $app in
      empty) r=$(measure "$WORK/empty/Empty.dll" no) ;;
      empty-r2r) r=$(measure "$WORK/empty-r2r/Empty.dll" no) ;;
      sutazai-fresh) r=$(measure "$WORK/sutazai/sutazai.dll" yes) ;;
      sutazai) r=$(measure "$WORK/sutazai/sutazai.dll" no) ;;
      sutazai-r2r-fresh) r=$(measure "$WORK/sutazai-r2r/sutazai.dll" yes) ;;
      sutazai-r2r) r=$(measure "$WORK/sutazai-r2r/sutazai.dll" no) ;;
    esac
    read -r h d m <<<"$r"
    times+=("$h"); readies+=("$d"); mems+=("$m")
  done
  ms[$app]=$(printf '%s\n' "${times[@]}" | median)
  rdy[$app]=$(printf '%s\n' "${readies[@]}" | median)
  rss[$app]=$(printf '%s\n' "${mems[@]}" | median)
done

printf '| app (median of %d starts) | start → /health 200 | × empty app (same publish) | start → /health/ready 200 | idle RSS |\n|---|---|---|---|---|\n' "$RUNS"
for app in "${apps[@]}"; do
  base=empty; [[ $app == *r2r* ]] && base=empty-r2r
  ready="—"; [ "${rdy[$app]}" -gt 0 ] && ready="${rdy[$app]} ms"
  printf '| %s | %d ms | %.1f× | %s | %d MB |\n' "$app" "${ms[$app]}" "$(echo "${ms[$app]} / ${ms[$base]}" | bc -l)" "$ready" "${rss[$app]}"
done

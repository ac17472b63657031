#!/usr/bin/env bash
# Cold start, side by side: the published SutazAI server against an empty ASP.NET Core app (`dotnet new web` with a
# /health route), each published Release and started from a foreign working directory, N times. Prints time from
# process start to the first 200 on /health, and the idle working set 5 s after that.
#   bench/coldstart.sh [runs=5]
set -euo pipefail
RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/sutazai-coldstart.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

dotnet publish "$ROOT/src/Sutazai.Server" -c Release -o "$WORK/sutazai" -nologo -clp:ErrorsOnly >/dev/null
mkdir -p "$WORK/empty-src" && (cd "$WORK/empty-src" && dotnet new web -n Empty -o . >/dev/null 2>&1)
sed -i 's|app.MapGet("/", () => "Hello World!");|app.MapGet("/", () => "Hello World!");\napp.MapGet("/health", () => "Healthy");|' "$WORK/empty-src/Program.cs"
dotnet publish "$WORK/empty-src" -c Release -o "$WORK/empty" -nologo -clp:ErrorsOnly >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start <dll> <fresh:yes|no> → "ms rss_mb"
measure() {
  local dll=$1 fresh=$2 p data
  p=$(port)
  data="$WORK/data-$(basename "$dll" .dll)"
  [ "$fresh" = yes ] && rm -rf "$data"
  mkdir -p "$WORK/elsewhere"
  local start end pid
  start=$(date +%s%N)
  (cd "$WORK/elsewhere" && exec dotnet "$dll" --urls "http://127.0.0.1:$p" --Sutazai:DataDir="$data" --Sutazai:Inference:Ollama:AutoDetect=false >/dev/null 2>&1) &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$p/health"; do sleep 0.01; done
  end=$(date +%s%N)
  sleep 5
  local rss
  rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(( (end - start) / 1000000 )) $rss"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }

declare -A ms rss
for app in empty sutazai-fresh sutazai; do
  times=(); mems=()
  for _ in $(seq 1 "$RUNS"); do
    case $app in
      empty) r=$(measure "$WORK/empty/Empty.dll" no) ;;
      sutazai-fresh) r=$(measure "$WORK/sutazai/sutazai.dll" yes) ;;
      sutazai) r=$(measure "$WORK/sutazai/sutazai.dll" no) ;;
    esac
    times+=("${r% *}"); mems+=("${r#* }")
  done
  ms[$app]=$(printf '%s\n' "${times[@]}" | median)
  rss[$app]=$(printf '%s\n' "${mems[@]}" | median)
done

printf '| app (median of %d starts) | start → /health 200 | × empty app | idle RSS |\n|---|---|---|---|\n' "$RUNS"
for app in empty sutazai-fresh sutazai; do
  printf '| %s | %d ms | %.1f× | %d MB |\n' "$app" "${ms[$app]}" "$(echo "${ms[$app]} / ${ms[empty]}" | bc -l)" "${rss[$app]}"
done

#!/usr/bin/env bash
# Builds the server and the benchmark in Release and prints the benchmark table (docs/performance.md has results).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Sutazai.Server -c Release -nologo -clp:ErrorsOnly
dotnet build bench/Sutazai.Bench -c Release -nologo -clp:ErrorsOnly
dotnet bench/Sutazai.Bench/bin/Release/net10.0/Sutazai.Bench.dll --server src/Sutazai.Server/bin/Release/net10.0/sutazai.dll "$@"

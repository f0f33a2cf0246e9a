#!/usr/bin/env bash
# Runs one fuzz target under libFuzzer for SECONDS, from the committed corpus (Tests/Fuzz/Corpus/TARGET)
# plus, for the manifest and ELF targets, the shipped manifests and the plugin libraries built in
# Plugins/.build. New inputs go to .build-fuzz/corpus/TARGET; a crash is written to
# .build-fuzz/crashes/ and fails the run. `make fuzz` builds the binary first.
#
#   Tests/Fuzz/run.sh TARGET SECONDS
set -euo pipefail
cd "$(dirname "$0")/../.."
target=$1
seconds=$2
build=.build-fuzz
binary=$build/debug/plugin-host-fuzz
work=$build/corpus/$target
seeds=$build/seeds/$target
mkdir -p "$work" "$seeds" "$build/crashes"
case $target in
    manifest) cp manifests/*.yaml manifests/*.json "$seeds"/ 2>/dev/null || true; rm -f "$seeds"/*.schema.json ;;
    elf) cp Plugins/.build/debug/lib*.so "$seeds"/ 2>/dev/null || true ;;
esac
# Swift's own crash handler would stop libFuzzer from writing the input that crashed; the Swift runtime
# keeps metadata caches for the life of the process, which the leak checker would report.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=detect_leaks=0
export PLUGIN_HOST_FUZZ_TARGET=$target
exec "$binary" "$work" "Tests/Fuzz/Corpus/$target" "$seeds" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$target-"

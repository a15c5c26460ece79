#!/usr/bin/env bash
# Builds the libFuzzer harness for every MeshProto decoder (FuzzDecoders.swift) with
# -sanitize=fuzzer,address and runs it.
#
#   Tests/Fuzz/run.sh [seconds]     fuzz for `seconds` (default 60), then print the stats
#   Tests/Fuzz/run.sh 0             build and write the seed corpus only
#
# Everything is built with swiftc/clang into .build-fuzz/, apart from the package build:
# `swift build` and `swift test` are not affected. The generated mesh.v1 C code and the
# Swift wrapper are instrumented for coverage and AddressSanitizer; the protobuf-c runtime
# is the system's libprotobuf-c (libprotobuf-c-dev), as in production.
#
# Inputs found are kept in Tests/Fuzz/corpus-local/ (not committed); a crash leaves its
# input in .build-fuzz/artifacts/ and the script exits non-zero. Reproduce one with
#   .build-fuzz/mesh-proto-fuzz .build-fuzz/artifacts/crash-...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-60}"
build="$root/.build-fuzz"
generated="$root/Shared/CMeshProto"

rm -rf "$build/obj" "$build/seeds"
mkdir -p "$build/obj" "$build/module" "$build/seeds" "$build/artifacts" "$root/Tests/Fuzz/corpus-local"

echo "run.sh: compiling the generated mesh.v1 code (instrumented)"
cflags=(-g -O1 -fsanitize=fuzzer-no-link,address -I "$generated/include")
for source in "$generated"/*.c; do
    clang "${cflags[@]}" -c "$source" -o "$build/obj/$(basename "$source" .c).o"
done

cat >"$build/module/module.modulemap" <<MAP
module CMeshProto {
    umbrella header "$generated/include/CMeshProto.h"
    export *
}
MAP

swiftflags=(
    -swift-version 6 -parse-as-library -O -g -sanitize=fuzzer,address
    -enable-upcoming-feature ExistentialAny -enable-upcoming-feature InternalImportsByDefault
    -enable-upcoming-feature MemberImportVisibility
    -I "$build/module" -Xcc -I"$generated/include"
)

echo "run.sh: compiling MeshProto"
swiftc "${swiftflags[@]}" -module-name MeshProto -wmo -num-threads 0 \
    -emit-module -emit-module-path "$build/module/MeshProto.swiftmodule" \
    -c "$root"/Shared/MeshProto/*.swift -o "$build/obj/MeshProto.o"

echo "run.sh: linking the harness"
swiftc "${swiftflags[@]}" -module-name MeshProtoFuzz \
    -use-ld=lld "$root/Tests/Fuzz/FuzzDecoders.swift" "$build"/obj/*.o -lprotobuf-c -o "$build/mesh-proto-fuzz"

MESH_FUZZ_WRITE_SEEDS="$build/seeds" "$build/mesh-proto-fuzz"
echo "run.sh: $(ls "$build/seeds" | wc -l) seeds in .build-fuzz/seeds"

if [[ "$seconds" == "0" ]]; then exit 0; fi

echo "run.sh: fuzzing for ${seconds}s"
set +e
SWIFT_BACKTRACE=enable=no "$build/mesh-proto-fuzz" "$root/Tests/Fuzz/corpus-local" "$build/seeds" \
    -max_total_time="$seconds" -timeout=10 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/" >"$build/last-run.log" 2>&1
status=$?
set -e
grep -E "INITED|DONE|ERROR|SUMMARY|^stat::|^Done|==[0-9]+==" "$build/last-run.log" | head -n 40
if [[ $status -ne 0 ]]; then
    echo "run.sh: the fuzzer FAILED (exit $status); see .build-fuzz/last-run.log and .build-fuzz/artifacts/" >&2
    exit "$status"
fi
echo "run.sh: no crash in ${seconds}s"

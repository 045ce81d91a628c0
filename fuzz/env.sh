# Sourced by the fuzz scripts: run fuzz/.venv's python (or FUZZ_VENV's) with atheris'
# ASan runtime preloaded (the interpreter itself is not instrumented; the extensions are).
FUZZ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_PY="${FUZZ_VENV:-$FUZZ_ROOT/fuzz/.venv}/bin/python"
export LD_PRELOAD="$("$FUZZ_PY" -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so"
# Python's own allocations never freed at exit are not our leaks; malloc instead of
# pymalloc lets ASan see overruns of objects the extensions allocate.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export PYTHONMALLOC=malloc
export TXFRAME_REQUIRE_EXTENSIONS=1

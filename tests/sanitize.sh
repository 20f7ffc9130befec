# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer: builds build/asan (Debug,
# REEL_SANITIZE=ON) and runs its tests with the given CTest arguments (default: the unit tests; the long
# label runs the whole suite). Leaks are reported, except Open MPI's own (tests/sanitizer/lsan.supp
# names libraries, never reel), and any UBSan finding fails.
#   bash tests/sanitize.sh [CTEST ARGUMENTS...]
source "$(dirname "$0")/lib.sh"
build="${REEL_ASAN_BUILD:?REEL_ASAN_BUILD must name the sanitizer build directory}"
# The compiler CMake picks (CC, else cc) must link ASan and UBSan; their runtime comes with the compiler
# that scripts/install-deps installs, so its absence fails here, named, rather than deep in the build.
compiler=${CC:-cc}
probe_dir=$(mktemp -d)
printf 'int main(void) { return 0; }\n' >"$probe_dir/probe.c"
if ! "$compiler" -fsanitize=address,undefined "$probe_dir/probe.c" -o "$probe_dir/probe" >"$probe_dir/cc.log" 2>&1 \
   || ! ASAN_OPTIONS=detect_leaks=0 "$probe_dir/probe" >>"$probe_dir/cc.log" 2>&1; then
  fail "$compiler cannot build and run a program with -fsanitize=address,undefined (its runtime, e.g. libasan and" \
       "libubsan of build-essential's gcc, missing? run scripts/install-deps):"
  sed 's/^/    /' "$probe_dir/cc.log" | head -5 >&2
  rm -rf "$probe_dir"
  finish
fi
rm -rf "$probe_dir"
(
  flock 9
  cmake -S "$REEL_SOURCE_DIR" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DREEL_SANITIZE=ON >"$WORK/configure.log" 2>&1 &&
  cmake --build "$build" -j"$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" >"$WORK/build.log" 2>&1
) 9>"$(dirname "$build")/.asan_build.lock" || { fail "building the sanitizer build"; tail -20 "$WORK/build.log" >&2; finish; }
pass "sanitizer build in $build"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# use_tls=0: LeakSanitizer's stop-the-world crashes ("Tracer caught signal 11") scanning the thread-local
# storage of the threads Open MPI leaves at exit (GCC 12's LSan, glibc 2.36); reel keeps no pointer in
# thread-local storage, so no leak of reel's can hide there.
export LSAN_OPTIONS="suppressions=$REEL_SOURCE_DIR/tests/sanitizer/lsan.supp:fast_unwind_on_malloc=0:use_tls=0:print_suppressions=0"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-L unit)
if (cd "$build" && ctest --output-on-failure "${args[@]}") >"$WORK/ctest.log" 2>&1; then
  pass "under ASan + UBSan: $(grep -E 'tests passed' "$WORK/ctest.log")"
else
  fail "under ASan + UBSan: $(grep -E 'tests passed|tests failed' "$WORK/ctest.log")"
  grep -E "runtime error|ERROR: (Address|Leak)Sanitizer|SUMMARY|^ *#[0-9]+ .* in (reel|[a-z_]+) /work" "$WORK/ctest.log" | head -40 >&2
fi
finish

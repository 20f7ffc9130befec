# One libFuzzer target (tests/fuzz/fuzz_<TARGET>.c) for a bounded time: builds the clang + ASan/UBSan +
# libFuzzer build once (build/fuzz), replays every kept crashing input of tests/fuzz/regressions/<TARGET>
# (each must now pass), then fuzzes from seeds made here with reel itself (a prepared corpus, a
# checkpoint, configurations, text). A crash fails the test and keeps the input: fix the bug, then add
# the input to tests/fuzz/regressions/<TARGET>/ so it stays fixed.
#   bash tests/fuzz.sh TARGET [SECONDS]      (TARGET: tokenizer, config, tokfile, vocab, checkpoint)
source "$(dirname "$0")/lib.sh"
target=${1:?target}
seconds=${2:-20}
# clang and its libFuzzer/sanitizer runtime come with scripts/install-deps: without them this fails. A
# one-line target linked the way the fuzzers are tells a missing runtime (libclang-rt-14-dev) from a
# build problem of reel's.
if ! command -v clang >/dev/null; then
  fail "the fuzzers need clang with libFuzzer: clang is missing (run scripts/install-deps: clang, libclang-rt-14-dev)"
  finish
fi
probe_dir=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe_dir/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe_dir/probe.c" -o "$probe_dir/probe" >"$probe_dir/clang.log" 2>&1; then
  fail "clang cannot link a libFuzzer target with ASan and UBSan (its runtime, libclang-rt-14-dev, missing?" \
       "run scripts/install-deps):"
  sed 's/^/    /' "$probe_dir/clang.log" | head -5 >&2
  rm -rf "$probe_dir"
  finish
fi
rm -rf "$probe_dir"
# a scratch directory per target (lib.sh named it after this script)
WORK="${WORK}_$target"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
build="${REEL_FUZZ_BUILD:?REEL_FUZZ_BUILD must name the fuzzing build directory}"
(
  flock 9   # one build at a time, even when several fuzz tests start together
  cmake -S "$REEL_SOURCE_DIR" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREEL_FUZZ=ON \
    -DREEL_SANITIZE=ON -DREEL_BUILD_TESTS=OFF >"$WORK/configure.log" 2>&1 &&
  cmake --build "$build" -j"$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" --target "fuzz_$target" >"$WORK/build.log" 2>&1
) 9>"$(dirname "$build")/.fuzz_build.lock" || { fail "building fuzz_$target"; tail -20 "$WORK/build.log" >&2; finish; }
fuzzer="$build/fuzz_$target"
export LSAN_OPTIONS="suppressions=$REEL_SOURCE_DIR/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TMPDIR="${TMPDIR:-/tmp}"

# seeds, made with the reel program of the main build
seeds="$WORK/seeds" && mkdir -p "$seeds"
case $target in
  tokenizer)
    printf 'Loved it! <br /><br />The "best" film &amp; don'"'"'t miss it... 10/10' >"$seeds/review"
    printf 'caf\xc3\xa9 \xe2\x80\x9cquoted\xe2\x80\x9d \xff\xfe broken \xe2\x82 x<3 a < b &lt;i&gt; well-made 1,000.50' >"$seeds/bytes"
    printf "they're o'brien's shouldn't've --- ... (parens) [x]" >"$seeds/clitics" ;;
  config)
    cp "$REEL_SOURCE_DIR"/configs/demo.ini "$REEL_SOURCE_DIR"/configs/imdb_lm.ini "$REEL_SOURCE_DIR"/configs/imdb_lstm_finetune.ini "$seeds/" ;;
  tokfile|vocab|checkpoint)
    reel synth --docs 60 --test-docs 10 --seed 3 "$WORK/s.tsv" "$WORK/t.tsv" >/dev/null
    reel prep --format tsv --test "$WORK/t.tsv" --valid-count 10 --vocab-size 60 "$WORK/s.tsv" "$WORK/data" >/dev/null
    cp "$WORK/data/train.tok" "$seeds/train.tok"; cp "$WORK/data/test.tok" "$seeds/test.tok"; cp "$WORK/data/vocab.txt" "$seeds/vocab.txt"
    if [ "$target" = checkpoint ]; then
      rm -f "$seeds"/*
      printf '[data]\ndir = %s\n[model]\ntype = bow\nvocab_size = 60\nembed_dim = 4\nhidden_dim = 4\n[train]\nepochs = 1\nbatch_size = 25\n' \
        "$WORK/data" >"$WORK/tiny.ini"
      reel train "$WORK/tiny.ini" --run-dir "$WORK/run" >/dev/null
      cp "$WORK/run/ckpt_best.h5" "$seeds/bow.h5"
    fi ;;
  *) fail "no fuzz target '$target'"; finish ;;
esac

# the inputs that once crashed it
regressions=("$REEL_SOURCE_DIR/tests/fuzz/regressions/$target"/*)
if [ -e "${regressions[0]}" ]; then
  "$fuzzer" "${regressions[@]}" >"$WORK/regressions.log" 2>&1 && pass "fuzz_$target: ${#regressions[@]} kept input(s) pass" \
    || { fail "fuzz_$target: a kept crashing input fails again"; tail -30 "$WORK/regressions.log" >&2; }
fi

mkdir -p "$WORK/corpus" "$WORK/artifacts"
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3000 -print_final_stats=1 -error_exitcode=1 \
  -artifact_prefix="$WORK/artifacts/" "$WORK/corpus" "$seeds" >"$WORK/fuzz.log" 2>&1 || status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/fuzz.log")
coverage=$(grep -o 'cov: [0-9]*' "$WORK/fuzz.log" | tail -1)
if [ "$status" -eq 0 ]; then pass "fuzz_$target: $seconds s, $runs inputs, $coverage, no crash"
else
  fail "fuzz_$target found a crash (status $status); kept: $(ls "$WORK/artifacts")"
  grep -E "ERROR|runtime error|invariant|#[0-9]+ 0x.* in " "$WORK/fuzz.log" | head -20 >&2
  echo "after the fix, copy the input to tests/fuzz/regressions/$target/" >&2
fi
finish

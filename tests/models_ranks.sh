# 1 rank against 2 for every registered model type and every variant of one (the GPT with rotary positions
# and attention dropout): the configurations, their default objectives and their tiny [model] keys come
# from test_models (the table tests/test_models.c checks), so a registered model is trained here too. Each trains 8 steps of a global batch of 40 on the same data on 1 and 2 ranks, and the
# checkpoints must agree within float rounding (the ranks sum the same gradient terms in another order).
source "$(dirname "$0")/lib.sh"

[ -x "${TEST_MODELS:-}" ] || { echo "FAIL: TEST_MODELS (the test_models program) not set" >&2; exit 1; }
types=$("$TEST_MODELS" --types) || { echo "FAIL: test_models --types: a registered type lacks a tiny model" >&2; exit 1; }
[ -n "$types" ] || { echo "FAIL: test_models --types listed no model type" >&2; exit 1; }

# The list is the program's own: it must be what reel train --help-config offers for [model] type.
offered=$(reel train --help-config | awk '$2 == "model" && $3 == "type" { print $6 }')
listed=$(awk '{ print $1 }' <<<"$types" | paste -sd'|')
if [ "$offered" = "$listed" ]; then pass "model types: $listed"; else
  fail "test_models lists '$listed' but reel train --help-config offers '$offered'"; fi

make_small_data "$WORK/data" 1000 # vocabulary 600

variants=$("$TEST_MODELS" --variants) || { echo "FAIL: test_models --variants" >&2; exit 1; }
# every registered type has its configuration among them
missing=$(comm -23 <(awk '{ print $1 }' <<<"$types" | sort) <(awk '{ print $2 }' <<<"$variants" | sort -u))
[ -z "$missing" ] && pass "every type has a configuration" || fail "types without a configuration: $missing"

# write_config FILE NAME OBJECTIVE: the tiny model (configuration NAME) with what its objective needs.
write_config() {
  {
    printf '[data]\ndir = %s\nseq_len = 10\nmax_tokens = 40\n[model]\nvocab_size = 600\n' "$WORK/data"
    "$TEST_MODELS" --ini "$2" || return 1
    if [ "$3" = next_token ]; then printf '[objective]\neval_split = test\neval_docs = 40\n'; fi
    printf '[optimizer]\ntype = adam\nlr = 0.01\nclip_norm = 1.0\n'
    printf '[train]\nepochs = 1\nmax_steps = 8\nbatch_size = 40\nlog_every = 4\nseed = 5\n'
    printf '[checkpoint]\nkeep_last = 10\n'
  } >"$1"
}

ranks=(--ignore /@world_size_at_save)
compared=0
# the list on descriptor 3: mpirun reads standard input, and would swallow the rest of the list
while read -r -u 3 name _ objective; do
  write_config "$WORK/$name.ini" "$name" "$objective" || { fail "$name: no configuration"; continue; }
  for n in 1 2; do
    expect_ok "$name, $n rank(s)" mpireel $n train "$WORK/$name.ini" --run-dir "$WORK/$name$n"
  done
  final=ckpt_00000008.h5
  for n in 1 2; do [ -f "$WORK/$name$n/$final" ] || fail "$name, $n rank(s): no $final in $WORK/$name$n"; done
  [ -f "$WORK/${name}1/$final" ] && [ -f "$WORK/${name}2/$final" ] || continue
  if "$CKPT_COMPARE" "$WORK/${name}1/$final" "$WORK/${name}2/$final" --tol 1e-4 "${ranks[@]}"; then
    pass "$name: 1 rank == 2 ranks"; else fail "$name: 1 rank != 2 ranks"; fi
  compared=$((compared + 1))
done 3<<<"$variants"
count=$(wc -l <<<"$variants")
[ "$compared" -eq "$count" ] || fail "compared $compared of the $count model configurations"
finish

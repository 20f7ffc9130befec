# 1 rank against 2 for every registered model type: the types, their default objectives and their tiny
# [model] keys come from test_models (the table tests/test_models.c checks), so a registered model is
# trained here too. Each trains 8 steps of a global batch of 40 on the same data on 1 and 2 ranks, and the
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

# write_config FILE TYPE OBJECTIVE: the tiny model with what its objective needs.
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
while read -r -u 3 type objective; do
  write_config "$WORK/$type.ini" "$type" "$objective" || { fail "$type: no configuration"; continue; }
  for n in 1 2; do
    expect_ok "$type, $n rank(s)" mpireel $n train "$WORK/$type.ini" --run-dir "$WORK/$type$n"
  done
  final=ckpt_00000008.h5
  for n in 1 2; do [ -f "$WORK/$type$n/$final" ] || fail "$type, $n rank(s): no $final in $WORK/$type$n"; done
  [ -f "$WORK/${type}1/$final" ] && [ -f "$WORK/${type}2/$final" ] || continue
  if "$CKPT_COMPARE" "$WORK/${type}1/$final" "$WORK/${type}2/$final" --tol 1e-4 "${ranks[@]}"; then
    pass "$type: 1 rank == 2 ranks"; else fail "$type: 1 rank != 2 ranks"; fi
  compared=$((compared + 1))
done 3<<<"$types"
count=$(wc -l <<<"$types")
[ "$compared" -eq "$count" ] || fail "compared $compared of the $count registered model types"
finish

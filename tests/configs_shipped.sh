# Every shipped configuration (configs/*.ini) trains as written, and the resolved config.ini its run
# directory gets trains again as given and resolves to the same file. Cross-key checks live in the model,
# objective and optimizer code, not in the config parser, so only training shows that a resolved file
# (which writes every key, defaults included) is still accepted: 6b6ce3a fixed one such refusal.
#
# The configs run unchanged from a scratch directory laid out as they expect (data/imdb, data/imdb_all
# (no validation split) and data/demo,
# data/imdb_sg300.vec, runs/imdb_lm and runs/imdb_gpt for the fine-tuning configs' init_from), on a small
# synthetic corpus, one step each with a batch of 4; their vocabulary sizes are cut to the prepared
# vocabulary's.
source "$(dirname "$0")/lib.sh"

cd "$WORK"
mkdir -p data runs
reel synth --docs 300 --test-docs 40 --seed 3 syn_train.tsv syn_test.tsv >/dev/null
reel synth --docs 200 --seed 4 syn_unsup.tsv >/dev/null
reel prep --format tsv --test syn_test.tsv --unsup syn_unsup.tsv --valid-count 40 --vocab-size 500 \
  syn_train.tsv data/imdb >/dev/null
# word vectors of the shipped configs' width (300) for every word of the vocabulary, in fastText's .vec
awk 'BEGIN { srand(5) } { line = $1; for (i = 0; i < 300; i++) line = line " " sprintf("%.4f", rand() - 0.5);
     rows[NR] = line } END { print NR " 300"; for (i = 1; i <= NR; i++) print rows[i] }' data/imdb/vocab.txt \
  >data/imdb_sg300.vec
# the same corpus without a validation split, as configs/imdb_bow_linear.ini expects it
reel prep --format tsv --test syn_test.tsv --unsup syn_unsup.tsv --valid-count 0 --vocab-size 500 \
  syn_train.tsv data/imdb_all >/dev/null
ln -s imdb data/demo    # the quick start's configs read data/demo

configs=()
# the language models first: the fine-tuning configs start from their checkpoints
for name in imdb_lm imdb_gpt; do configs+=("$REEL_SOURCE_DIR/configs/$name.ini"); done
for file in "$REEL_SOURCE_DIR"/configs/*.ini; do
  case "$(basename "$file" .ini)" in imdb_lm | imdb_gpt) ;; *) configs+=("$file") ;; esac
done
[ "${#configs[@]}" -ge 20 ] && pass "${#configs[@]} shipped configs" || fail "only ${#configs[@]} configs found"

one_step=(--set train.max_steps=1 --set train.batch_size=4)
for file in "${configs[@]}"; do
  name=$(basename "$file" .ini)
  run="runs/check_$name"
  if ! mpireel 1 train "$file" --run-dir "$run" "${one_step[@]}" >"$name.log" 2>&1; then
    fail "$name.ini does not train: $(grep -m1 -E 'error|rror:' "$name.log" || tail -n 1 "$name.log")"
    continue
  fi
  pass "$name.ini trains"
  # the fine-tuning configs read runs/imdb_lm/ckpt_best.h5 and runs/imdb_gpt/ckpt_best.h5
  # (one step writes no best checkpoint: the step's own stands in for it)
  case "$name" in imdb_lm | imdb_gpt) mkdir -p "runs/$name" && cp "$run/ckpt_00000001.h5" "runs/$name/ckpt_best.h5" ;; esac
  again="runs/again_$name"
  if ! mpireel 1 train "$run/config.ini" --run-dir "$again" >"$name.again.log" 2>&1; then
    fail "$name: its resolved config.ini does not train again: $(grep -m1 -E 'rror' "$name.again.log" || tail -n 1 "$name.again.log")"
    continue
  fi
  if diff <(grep -v '^run_dir = ' "$run/config.ini") <(grep -v '^run_dir = ' "$again/config.ini") >"$name.diff"; then
    pass "$name: the resolved config.ini trains again and resolves to itself"
  else
    fail "$name: the resolved config.ini resolves differently: $(head -c 400 "$name.diff")"
  fi
done

finish

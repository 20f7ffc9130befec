# The bag of words with word n-grams and Naive-Bayes ratios, trained end to end: the same checkpoint on 1
# and 2 ranks (within float rounding: the ranks sum the same gradient terms in another order; the ratios
# are counted from the whole split on every rank), a resume bit for bit, evaluation, and the
# configuration errors as `reel train` reports them.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500 # vocabulary 600, 20 steps per epoch of 100
write_small_config "$WORK/small.ini" "$WORK/data"
ngram=(--set model.ngrams=3 --set model.ngram_buckets=5000 --set model.nb_scaling=true --set model.word_dropout=0.3)
final=ckpt_00000060.h5 # 3 epochs

# ranks_and_resume LABEL DIR ARGS...: 60 steps on 2 ranks ($WORK/DIR2) and on 1 rank ($WORK/DIR1), equal
# within float rounding; and a run stopped inside epoch 1 (step 13) and resumed to 60 (inside epoch 2,
# $WORK/DIRmid), bit for bit the run on 2 ranks
ranks_and_resume() {
  local label=$1 dir=$2; shift 2
  expect_ok "${label}2 ranks" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/${dir}2" --set train.max_steps=60 "$@"
  expect_ok "${label}1 rank" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/${dir}1" --set train.max_steps=60 "$@"
  if "$CKPT_COMPARE" "$WORK/${dir}1/$final" "$WORK/${dir}2/$final" --tol 1e-4 --ignore /@world_size_at_save; then
    pass "${label}1 rank == 2 ranks"; else fail "${label}1 rank != 2 ranks"; fi
  expect_ok "${label}to step 13" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/${dir}mid" --set train.max_steps=13 "$@"
  expect_ok "${label}resumed to 60" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/${dir}mid" --set train.max_steps=60 "$@"
  grep -q "resuming from .*ckpt_00000013.h5" "$WORK/out.txt" && pass "${label}resumed at 13" || fail "${label}no resume message"
  if "$CKPT_COMPARE" "$WORK/${dir}2/$final" "$WORK/${dir}mid/$final" --exact; then pass "${label}resume: bit for bit"
  else fail "${label}resume differs from the uninterrupted run"; fi
}

ranks_and_resume "" full "${ngram[@]}"

# lazy Adam ([optimizer] lazy_embedding): the rows a step skips are those of the summed gradient, the same
# on every rank, so 1 and 2 ranks agree, and a resume is bit for bit; it differs from the dense run
lazy=("${ngram[@]}" --set optimizer.lazy_embedding=true)
ranks_and_resume "lazy: " lazy "${lazy[@]}"
if "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/lazy2/$final" --exact --ignore /config:optimizer.lazy_embedding >/dev/null 2>&1; then
  fail "lazy_embedding changed nothing"; else pass "lazy_embedding changes the updates"; fi

# the linear model (hidden_dim = 0) over binary features: NB-weighted logistic regression, as
# configs/imdb_bow_linear.ini trains it; 1 and 2 ranks agree, a resume is bit for bit, and it learns the task
linear=(--set model.ngrams=3 --set model.ngram_buckets=5000 --set model.nb_scaling=true --set model.binary=true
        --set model.hidden_dim=0 --set model.batch_norm=false --set model.dropout=0 --set model.embed_dim=1
        --set model.embed_init_std=0 --set optimizer.lr=0.1)
ranks_and_resume "linear: " lin "${linear[@]}"
expect_ok "linear eval" reel eval "$WORK/lin2/$final" --split test
acc=$(sed -n 's/.*accuracy \([0-9.]*\)%.*/\1/p' "$WORK/out.txt" | head -1)
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a > 75) }'; then pass "linear: test accuracy $acc%"; else
  fail "linear: test accuracy '${acc}' (expected above 75%)"; fi
expect_fail "linear with batch norm" "\[model\] hidden_dim = 0 \(a linear model, no hidden layer\) with batch_norm = true" \
  reel train "$WORK/small.ini" --run-dir "$WORK/bad" "${linear[@]}" --set model.batch_norm=true

# the model learns the synthetic task (the words alone reach 73.6% in these 3 epochs, with n-grams and
# ratios 86.0%) and is evaluated from its checkpoint (the ratios travel in it)
expect_ok "eval" reel eval "$WORK/full2/$final" --split test
acc=$(sed -n 's/.*accuracy \([0-9.]*\)%.*/\1/p' "$WORK/out.txt" | head -1)
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a > 75) }'; then pass "test accuracy $acc%"; else
  fail "test accuracy '${acc}' (expected above 75%)"; fi

# the word rows are exported, not the buckets after them (a row per word of the data's vocabulary, which
# the model's vocab_size takes when it is smaller), and embed_from reads them back into the word rows alone:
# into a model of 300 words, the 297 words after the 3 reserved ids, none of the file's later words into
# the bucket rows that follow row 299
words=$(wc -l <"$WORK/data/vocab.txt")
expect_ok "export vectors" reel export vectors "$WORK/full2/$final" "$WORK/words.vec"
[ "$(head -1 "$WORK/words.vec")" = "$words 16" ] && pass "exported: $words words of width 16" \
  || fail "exported header '$(head -1 "$WORK/words.vec")', expected '$words 16'"
expect_ok "embed_from into an n-gram model" reel train "$WORK/small.ini" --run-dir "$WORK/from" --set train.max_steps=1 \
  "${ngram[@]}" --set model.embed_from="$WORK/words.vec" --set model.vocab_size=300
grep -q "embedding from .*: 297 of 297 words have a vector .*the file holds $words of width 16" "$WORK/out.txt" \
  && pass "embed_from read the word rows" || fail "embed_from: $(grep 'embedding from' "$WORK/out.txt")"

expect_fail "ngrams = 4" "\[model\] ngrams = 4: use 1 \(words\), 2 \(and bigrams\) or 3" \
  reel train "$WORK/small.ini" --run-dir "$WORK/bad" --set model.ngrams=4 --set model.ngram_buckets=10
expect_fail "ngrams without buckets" "\[model\] ngrams = 2 needs ngram_buckets" \
  reel train "$WORK/small.ini" --run-dir "$WORK/bad" --set model.ngrams=2
expect_fail "buckets without ngrams" "\[model\] ngram_buckets = 10 with ngrams = 1" \
  reel train "$WORK/small.ini" --run-dir "$WORK/bad" --set model.ngram_buckets=10
expect_fail "ngrams = 0" "ngrams.*must be >= 1" \
  reel train "$WORK/small.ini" --run-dir "$WORK/bad" --set model.ngrams=0
finish

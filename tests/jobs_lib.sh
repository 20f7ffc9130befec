# Checks of what the job scripts' output says (sourced after lib.sh by tests/jobs_scripts.sh, which runs
# the scripts outside a scheduler, and tests/slurm.sh, which runs them under a real Slurm): the same
# assertions whoever started the job. Each takes a label for its messages and the job's log.

# lm_job_args DATA_DIR: sets LM_ARGS, the `reel train` arguments that shrink the shipped
# configs/imdb_lm.ini (3 LSTM layers of 500 over IMDb) to a model of seconds on DATA_DIR, keeping its
# number of layers, so that the shipped fine-tuning config (which freezes the lower two) fits it.
lm_job_args() {
  local vocab
  vocab=$(sed -n 's/^size = //p' "$1/prep.ini")
  LM_ARGS=(--set data.dir="$1" --set model.vocab_size="$vocab" --set model.embed_dim=8 --set model.hidden_dim=8
           --set data.seq_len=12 --set objective.train_splits=train,valid --set objective.eval_docs=100
           --set train.epochs=1 --set train.batch_size=50 --set train.log_every=10 --set checkpoint.every_steps=10)
}

# finetune_job_args DATA_DIR LM_CHECKPOINT: FINETUNE_ARGS, the same for configs/imdb_lstm_finetune.ini
finetune_job_args() {
  local vocab
  vocab=$(sed -n 's/^size = //p' "$1/prep.ini")
  FINETUNE_ARGS=(--set data.dir="$1" --set model.vocab_size="$vocab" --set model.embed_dim=8 --set model.hidden_dim=8
                 --set data.seq_len=12 --set data.max_tokens=40 --set model.init_from="$2" --set train.epochs=1
                 --set train.batch_size=100 --set train.log_every=5)
}

# check_prep WHAT LOG INPUT_TSV OUT VALID VOCAB: `reel prep` of INPUT_TSV (a header line, one document a
# line) into OUT moved VALID documents to valid and kept a vocabulary of VOCAB entries; the report's
# table agrees with the files written (read back by reel inspect).
check_prep() {
  local what=$1 log=$2 input=$3 out=$4 valid=$5 vocab=$6 bad="" split docs tokens
  local total=$(($(wc -l <"$input") - 1))
  for split in train valid; do
    [ "$split" = train ] && docs=$((total - valid)) || docs=$valid
    tokens=$(awk -v s="$split" '$1 == s { print $3 }' "$log")
    awk -v s="$split" -v d="$docs" '$1 == s && $2 == d { found = 1 } END { exit !found }' "$log" \
      || bad+=" the report's $split line is not '$split $docs ...';"
    [ -n "$tokens" ] && [ "$tokens" -gt 0 ] || { bad+=" no token count for $split;"; continue; }
    [ -f "$out/$split.tok" ] || { bad+=" no $split.tok;"; continue; }
    reel inspect "$out/$split.tok" >"$WORK/inspect.txt" 2>&1 || bad+=" $split.tok does not validate;"
    grep -Eq "^  documents +$docs\$" "$WORK/inspect.txt" || bad+=" $split.tok: not $docs documents;"
    grep -Eq "^  tokens +$tokens\$" "$WORK/inspect.txt" || bad+=" $split.tok: not the $tokens tokens reported;"
    grep -Eq "^  vocabulary +$vocab " "$WORK/inspect.txt" || bad+=" $split.tok: not a vocabulary of $vocab;"
  done
  [ ! -e "$out/test.tok" ] || bad+=" a test.tok from an input without a test set;"
  grep -q "^  vocabulary: $vocab entries" "$log" || bad+=" the report's vocabulary is not $vocab entries;"
  [ "$(wc -l <"$out/vocab.txt")" -eq "$vocab" ] || bad+=" vocab.txt has $(wc -l <"$out/vocab.txt") lines, not $vocab;"
  [ -f "$out/prep.ini" ] || bad+=" no prep.ini;"
  [ -z "$bad" ] && pass "$what: $((total - valid)) + $valid documents, the tokens reported, a vocabulary of $vocab" \
    || { fail "$what:$bad"; sed 's/^/    /' "$log" >&2; }
}

# check_commtest WHAT LOG RANKS: reel commtest's report: RANKS ranks on this host, the five sizes from
# 4 KiB to 64 MiB each summed right, a best time no longer than the median, and the bus bandwidth that
# the median gives (2 (p-1)/p x bytes / time), within the rounding of the printed figures.
check_commtest() {
  local what=$1 log=$2 ranks=$3 host hosts="" r bad=""
  host=$(hostname)
  for r in $(seq 0 $((ranks - 1))); do hosts+=" $r=$host"; done
  grep -qx "reel commtest: $ranks rank(s) on 1 host(s):$hosts" "$log" \
    || bad+=" the ranks line is not '$ranks rank(s) on 1 host(s):$hosts';"
  bad+=$(awk -v p="$ranks" '
    BEGIN { split("4096 65536 1048576 16777216 67108864", want, " ") }
    $1 ~ /^[0-9]+$/ && NF == 5 {
      n++
      if ($1 != want[n]) printf " row %d is of %s bytes, not %s;", n, $1, want[n]
      if ($5 != "right") printf " %s bytes: %s;", $1, $5
      if ($3 > $2 || $3 < 0) printf " %s bytes: best %s ms against median %s ms;", $1, $3, $2
      # the printed median is rounded to 0.0005 ms: the bandwidth lies between those of its bounds
      lo = 2 * (p - 1) / p * $1 / (($2 + 0.0005) * 1e6); hi = $2 > 0.0005 ? 2 * (p - 1) / p * $1 / (($2 - 0.0005) * 1e6) : 1e30
      if ($4 < lo - 0.005 || $4 > hi + 0.005) printf " %s bytes: bus %s GB/s, the median %s ms gives %.2f-%.2f;", $1, $4, $2, lo, hi
    }
    END { if (n != 5) printf " %d size rows, not 5;", n }' "$log")
  grep -qx "every sum is right" "$log" || bad+=" no 'every sum is right';"
  [ -z "$bad" ] && pass "$what: $ranks ranks on $host, 5 sizes summed right, times and bandwidths consistent" \
    || { fail "$what:$bad"; sed 's/^/    /' "$log" >&2; }
}

# check_lm WHAT LOG RUN_DIR STEPS: the tiny language model of lm_job_args ran its STEPS steps with the
# shipped config's 3 layers; its final checkpoint and the best one validate; metrics.h5 holds a
# training row per 10 steps and the final perplexity the log printed.
check_lm() {
  local what=$1 log=$2 dir=$3 steps=$4 bad="" final ppl
  final="$dir/ckpt_$(printf %08d "$steps").h5"
  if reel inspect "$final" >"$WORK/inspect.txt" 2>&1; then
    grep -Eq "^  model_type +rnn_lm\$" "$WORK/inspect.txt" || bad+=" $final is not a language model;"
    grep -Eq "^  global_step +$steps\$" "$WORK/inspect.txt" || bad+=" $final is not of step $steps;"
    grep -q "^  /model/lstm_l2_fwd/w_ih " "$WORK/inspect.txt" && ! grep -q "lstm_l3" "$WORK/inspect.txt" \
      || bad+=" $final does not have the config's 3 LSTM layers;"
  else bad+=" $final missing or invalid: $(head -1 "$WORK/inspect.txt");"; fi
  reel inspect "$dir/ckpt_best.h5" >/dev/null 2>&1 || bad+=" no valid ckpt_best.h5;"
  ppl=$(sed -n 's/^final test perplexity: //p' "$log")
  if reel inspect "$dir/metrics.h5" >"$WORK/inspect.txt" 2>&1; then
    grep -Eq "^  /train/step +$((steps / 10)) rows, latest $steps\$" "$WORK/inspect.txt" \
      || bad+=" metrics.h5: not $((steps / 10)) training rows up to step $steps;"
    # the log prints 4 significant digits (%.4g): the stored value must round to them
    awk -v p="$ppl" '$1 == "/eval/perplexity" && p != "" && $NF > 0 {
        unit = 10 ^ (int(log($NF) / log(10) + 1e-9) - 3); d = $NF - p
        found = (d < 0 ? -d : d) <= unit / 2 + 1e-6 * $NF } END { exit !found }' \
      "$WORK/inspect.txt" || bad+=" metrics.h5: the last perplexity is not the log's final '$ppl';"
  else bad+=" metrics.h5 missing or invalid;"; fi
  [ -z "$bad" ] && pass "$what: $steps steps of a 3-layer language model, checkpoints and metrics (final perplexity $ppl)" \
    || { fail "$what:$bad"; tail -5 "$log" | sed 's/^/    /' >&2; }
}

# check_finetune WHAT LOG LM_CHECKPOINT FINAL_CHECKPOINT: the classifier started from the language
# model: the log lists as loaded every tensor of the LM's /model but its decoder; the tensors the
# shipped config freezes (embedding, LSTM layers 0 and 1 and their batch-norm weights) are still the
# LM's bit for bit at the end, while the top layer, which trains, is not.
check_finetune() {
  local what=$1 log=$2 lm=$3 final=$4 bad="" line loaded expected differing
  line=$(grep "^starting from $lm: loaded " "$log" || true)
  if [ -z "$line" ]; then bad+=" no 'starting from $lm: loaded ...' line;"; else
    loaded=$(sed 's/^starting from [^:]*: loaded \([^;]*\);.*/\1/' <<<"$line" | tr -d ' ' | tr ',' '\n' | sort)
    expected=$(reel inspect "$lm" | sed -n 's|^  /model/\([^ ]*\) .*|\1|p' | grep -v '^decoder/' | sort)
    [ -n "$expected" ] && [ "$loaded" = "$expected" ] \
      || bad+=" loaded '$(echo $loaded)', the LM's encoder is '$(echo $expected)';"
    grep -q "; initialised as usual: output/weight, output/bias; not used from the checkpoint: decoder/bias, decoder/weight\$" <<<"$line" \
      || bad+=" the head or the decoder not reported as such;"
  fi
  # ckpt_compare lists the tensors that differ (exit 1: the head and the top layer must)
  differing=$("$CKPT_COMPARE" "$final" "$lm" --exact 2>/dev/null | sed -n 's|^  /model/\([^ :]*\).*|\1|p' || true)
  local tensor
  for tensor in embedding/weight lstm_l0_fwd/w_ih lstm_l0_fwd/w_hh lstm_l0_fwd/b_ih lstm_l0_fwd/b_hh batchnorm_l0/weight \
                batchnorm_l0/bias lstm_l1_fwd/w_ih lstm_l1_fwd/w_hh lstm_l1_fwd/b_ih lstm_l1_fwd/b_hh batchnorm_l1/weight batchnorm_l1/bias; do
    ! grep -qx "$tensor" <<<"$differing" || bad+=" frozen $tensor moved;"
  done
  grep -qx "lstm_l2_fwd/w_ih" <<<"$differing" || bad+=" the top layer lstm_l2_fwd/w_ih did not train;"
  [ -z "$bad" ] && pass "$what: started from the LM ($(wc -l <<<"$loaded") tensors loaded), frozen layers kept, the top one trained" \
    || { fail "$what:$bad"; grep -v '^[a-z_0-9]* = \|^;\|^\[\|^$' "$log" | tail -12 | sed 's/^/    /' >&2; }
}

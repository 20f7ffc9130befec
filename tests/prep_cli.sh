# reel synth and reel prep end to end on small generated data: outputs, canonical order, the
# tarball/directory identity, determinism, and every input error with its message.
source "$(dirname "$0")/lib.sh"

u64_at() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
u32_at() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }

# The size a token file must have according to its own header.
expected_size() {
  local f=$1 n t c
  n=$(u64_at "$f" 16); t=$(u64_at "$f" 24); c=$(u32_at "$f" 36)
  echo $((64 + 8 * (n + 1) + (c > 0 ? 4 * n : 0) + 4 * t))
}

# dump_tok FILE VOCAB: one line per document, "<label>:" then its first five tokens (spelled via VOCAB).
dump_tok() {
  local f=$1 vocab=$2 n c
  n=$(u64_at "$f" 16); c=$(u32_at "$f" 36)
  {
    od -An -v -t u8 -j 64 -N $((8 * (n + 1))) "$f" | tr -s ' ' '\n' | grep -v '^$' | sed 's/^/S /'
    if [ "$c" -gt 0 ]; then
      od -An -v -t d4 -j $((64 + 8 * (n + 1))) -N $((4 * n)) "$f" | tr -s ' ' '\n' | grep -v '^$' | sed 's/^/L /'
    fi
    od -An -v -t u4 -j $((64 + 8 * (n + 1) + (c > 0 ? 4 * n : 0))) "$f" | tr -s ' ' '\n' | grep -v '^$' | sed 's/^/I /'
  } | awk -v vocab="$vocab" '
    BEGIN { while ((getline line < vocab) > 0) { split(line, a, "\t"); tok[nv++] = a[1] } }
    $1 == "S" { s[ns++] = $2 } $1 == "L" { l[nl++] = $2 } $1 == "I" { id[ni++] = $2 }
    END { for (d = 0; d < ns - 1; d++) { out = (nl ? l[d] : "-") ":";
            for (k = s[d]; k < s[d + 1] && k < s[d] + 5; k++) out = out " " tok[id[k]]; print out } }'
}

check_tok_sizes() {
  local dir=$1 f
  for f in "$dir"/*.tok; do
    if [ "$(stat -c %s "$f")" -eq "$(expected_size "$f")" ]; then pass "$(basename "$f") size matches its header"
    else fail "$f: size $(stat -c %s "$f") != $(expected_size "$f") from its header"; fi
  done
}

# ---- synth ----
expect_ok "synth --help" reel synth --help
grep -q -- "--test-docs" "$WORK/out.txt" && pass "synth --help lists --test-docs" || fail "synth --help"
expect_ok "synth" reel synth --docs 50 --test-docs 20 --seed 3 s_train.tsv s_test.tsv
[ "$(wc -l < s_train.tsv)" -eq 51 ] && [ "$(wc -l < s_test.tsv)" -eq 21 ] && pass "synth row counts" || fail "synth row counts"
[ "$(head -1 s_train.tsv)" = "$(printf 'label\ttext')" ] && pass "synth header" || fail "synth header"
if tail -n +2 s_train.tsv | cut -f1 | sort -u | tr '\n' ' ' | grep -qx "neg pos "; then pass "synth labels are neg/pos"
else fail "synth labels: $(tail -n +2 s_train.tsv | cut -f1 | sort -u | tr '\n' ' ')"; fi
reel synth --docs 30 --test-docs 0 --seed 3 s_prefix.tsv >/dev/null
cmp -s s_prefix.tsv <(head -31 s_train.tsv) && pass "synth document i does not depend on --docs" || fail "synth prefix"
reel synth --docs 50 --seed 4 s_other.tsv >/dev/null
cmp -s s_other.tsv s_train.tsv && fail "synth: another seed gave the same corpus" || pass "synth seed changes the corpus"
words=$(tail -n +2 s_train.tsv | cut -f2 | awk '{ print NF }' | sort -n | sed -n '1p;$p' | tr '\n' ' ')
set -- $words
[ "$1" -ge 30 ] && [ "$2" -le 200 ] && pass "synth reviews have 30-200 words ($words)" || fail "synth lengths $words"
expect_fail "synth without output" "expected OUT.tsv" reel synth
expect_fail "synth bad --docs" "--docs 'x': expected a non-negative integer" reel synth --docs x a.tsv

# ---- prep of a TSV ----
expect_ok "prep --help" reel prep --help
for opt in --format --test --unsup --text-column --label-column --valid-count --valid-fraction --seed \
  --vocab-size --min-count --threads prep.ini; do
  grep -q -- "$opt" "$WORK/out.txt" || fail "prep --help does not mention $opt"
done
expect_ok "prep tsv" reel prep s_train.tsv tsv1 --test s_test.tsv
[ "$(ini_get tsv1/prep.ini format)" = tsv ] && pass "tsv detected" || fail "format: $(ini_get tsv1/prep.ini format)"
[ "$(ini_get tsv1/prep.ini train_docs)" = 40 ] && [ "$(ini_get tsv1/prep.ini valid_docs)" = 10 ] &&
  [ "$(ini_get tsv1/prep.ini test_docs)" = 20 ] && pass "tsv split counts 40/10/20" ||
  fail "tsv counts: $(grep _docs tsv1/prep.ini | tr '\n' ' ')"
[ "$(cat tsv1/labels.txt)" = "$(printf 'neg\npos')" ] && pass "labels.txt" || fail "labels.txt: $(cat tsv1/labels.txt)"
[ "$(wc -l < tsv1/vocab.txt)" = "$(ini_get tsv1/prep.ini size)" ] && pass "vocab.txt lines = prep.ini size" ||
  fail "vocab lines $(wc -l < tsv1/vocab.txt) vs $(ini_get tsv1/prep.ini size)"
[ "$(head -3 tsv1/vocab.txt | cut -f1 | tr '\n' ' ')" = "<pad> <unk> <eod> " ] && pass "reserved ids" || fail "reserved"
check_tok_sizes tsv1
[ "$(u32_at tsv1/train.tok 32)" = "$(ini_get tsv1/prep.ini size)" ] && [ "$(u32_at tsv1/test.tok 36)" = 2 ] &&
  pass "header V and C" || fail "header V/C"
sum=$(od -An -t x8 -j 40 -N 8 tsv1/valid.tok | tr -d ' ')
[ "$sum" = "$(ini_get tsv1/prep.ini checksum)" ] && pass "header checksum = prep.ini checksum" || fail "checksum $sum"
ls tsv1 | grep -q '\.tmp$' && fail "temporaries left: $(ls tsv1)" || pass "no temporaries left"
[ "$(ini_get tsv1/prep.ini test_tokens)" -gt 0 ] && pass "tokens counted" || fail "test_tokens"
# the order of the training rows is kept: the first train document is the first row not moved to valid
expect_ok "prep tsv again" reel prep s_train.tsv tsv2 --test s_test.tsv
cmp -s tsv1/train.tok tsv2/train.tok && cmp -s tsv1/valid.tok tsv2/valid.tok && cmp -s tsv1/vocab.txt tsv2/vocab.txt &&
  pass "prep is deterministic" || fail "two runs differ"
expect_ok "prep tsv seed 9" reel prep --seed 9 s_train.tsv tsv3 --test s_test.tsv
cmp -s tsv1/valid.tok tsv3/valid.tok && fail "seed did not change valid" || pass "seed changes the valid split"
cmp -s tsv1/vocab.txt tsv3/vocab.txt && pass "vocab independent of the split seed" || fail "vocab changed with seed"
expect_ok "prep tsv one thread" reel prep --threads 1 s_train.tsv tsv4 --test s_test.tsv
cmp -s tsv1/train.tok tsv4/train.tok && cmp -s tsv1/test.tok tsv4/test.tok && pass "--threads 1 gives the same files" ||
  fail "--threads 1 differs"
expect_ok "prep --vocab-size 40 --valid-count 7" reel prep --vocab-size 40 --valid-count 7 s_train.tsv tsv5
[ "$(wc -l < tsv5/vocab.txt)" = 40 ] && [ "$(ini_get tsv5/prep.ini valid_docs)" = 7 ] && pass "vocab cap and valid count" ||
  fail "vocab cap: $(wc -l < tsv5/vocab.txt), valid $(ini_get tsv5/prep.ini valid_docs)"
awk -F' = ' '$1 == "train_unknown_rate" { exit !($2 > 0) }' tsv5/prep.ini && pass "capped vocab has unknowns" ||
  fail "no unknowns with a capped vocabulary"
[ -e tsv5/test.tok ] && fail "test.tok without --test" || pass "no test.tok without --test"

# labels are sorted names; an unsup file needs only the text column
printf 'text\tlabel\nfine day\tsunny\nwet day\train\ncold\tsnow\nhot\tsunny\nmild\train\n' > w_train.tsv
printf 'text\nnothing special\n\nanother one\n' > w_unsup.tsv
expect_ok "prep tsv with unsup" reel prep --valid-count 0 --unsup w_unsup.tsv w_train.tsv w1
[ "$(cat w1/labels.txt | tr '\n' ' ')" = "rain snow sunny " ] && pass "classes in sorted order" || fail "labels $(cat w1/labels.txt)"
[ "$(dump_tok w1/train.tok w1/vocab.txt | cut -d: -f1 | tr '\n' ' ')" = "2 0 1 2 0 " ] && pass "labels mapped by name" ||
  fail "labels: $(dump_tok w1/train.tok w1/vocab.txt | tr '\n' '|')"
[ "$(u32_at w1/unsup.tok 36)" = 0 ] && [ "$(u64_at w1/unsup.tok 16)" = 2 ] && pass "unsup: 2 docs, no labels (empty line skipped)" ||
  fail "unsup header"
[ -e w1/valid.tok ] && fail "valid.tok with --valid-count 0" || pass "no valid.tok with --valid-count 0"
expect_ok "prep tsv without unsup into the same dir" reel prep --valid-count 0 w_train.tsv w1
[ -e w1/unsup.tok ] && fail "stale unsup.tok kept" || pass "stale unsup.tok removed"

# text: one document per line, empty lines skipped, no labels
printf 'The first line.\n\nSecond   line here\nthird\n' > corpus.txt
expect_ok "prep text" reel prep --valid-count 1 corpus.txt w1
[ "$(ini_get w1/prep.ini format)" = text ] && [ "$(ini_get w1/prep.ini train_docs)" = 2 ] &&
  [ "$(ini_get w1/prep.ini skipped)" = 1 ] && pass "text: 3 documents, 1 empty line skipped" || fail "text counts"
[ -e w1/labels.txt ] && fail "labels.txt kept for unlabelled data" || pass "no labels.txt for text"
[ "$(u32_at w1/train.tok 36)" = 0 ] && pass "text: C = 0" || fail "text C"

# ---- a small fake IMDb tree: canonical order, robustness, tarball identity ----
A=imdb/aclImdb
mkdir -p $A/train/pos $A/train/neg $A/train/unsup $A/test/pos $A/test/neg
printf 'docpos10 is <br /><br />GREAT' > $A/train/pos/10_8.txt
printf 'docpos2 good' > $A/train/pos/2_7.txt
printf 'docpos33 fine' > $A/train/pos/33_10.txt
awk 'BEGIN { printf "docpos7 "; for (n = 0; n < 1048576; n += 10) printf "good film\n" }' > $A/train/pos/7_9.txt
: > $A/train/neg/5_1.txt
printf 'docneg1 bad \xff\xfe movie' > $A/train/neg/1_2.txt
printf 'docneg20 awful &amp; dull' > $A/train/neg/20_3.txt
printf 'unsup zero' > $A/train/unsup/0_0.txt
printf 'unsup twelve' > $A/train/unsup/12_0.txt
printf 'unsup three' > $A/train/unsup/3_0.txt
printf 'docpos4 test good' > $A/test/pos/4_8.txt
printf 'docneg9 test bad' > $A/test/neg/9_2.txt
printf 'not a review' > $A/train/pos/notes.txt
printf 'readme\n' > $A/README
printf 'x\n' > $A/imdb.vocab
printf 'x\n' > $A/train/urls_pos.txt
(cd imdb && tar czf ../fake.tar.gz aclImdb)

expect_ok "prep fake imdb dir, no valid" reel prep --valid-count 0 $A i0
expected="0: docneg1 bad $(printf '\xef\xbf\xbd\xef\xbf\xbd') movie|0:|0: docneg20 awful & dull|1: docpos2 good|1: docpos7 good film good film|1: docpos10 is great|1: docpos33 fine|"
got=$(dump_tok i0/train.tok i0/vocab.txt | tr '\n' '|')
[ "$got" = "$expected" ] && pass "canonical order (label, numeric id); html, entities, invalid UTF-8, empty review" ||
  fail "train.tok documents:
    got      $got
    expected $expected"
[ "$(dump_tok i0/unsup.tok i0/vocab.txt | tr '\n' '|')" = "-: unsup zero|-: unsup three|-: unsup twelve|" ] &&
  pass "unsup ordered by id, unlabelled" || fail "unsup: $(dump_tok i0/unsup.tok i0/vocab.txt | tr '\n' '|')"
[ "$(dump_tok i0/test.tok i0/vocab.txt | tr '\n' '|')" = "0: <unk> <unk> bad|1: <unk> <unk> good|" ] &&
  pass "test split; words seen only in test are <unk>" || fail "test: $(dump_tok i0/test.tok i0/vocab.txt | tr '\n' '|')"
[ "$(ini_get i0/prep.ini train_docs)" = 7 ] && [ "$(ini_get i0/prep.ini train_tokens)" -gt 200000 ] &&
  pass "7 training reviews incl. the empty one and the 1 MB one" || fail "train counts"
[ "$(ini_get i0/prep.ini skipped)" = 1 ] && pass "non-review file in a review directory skipped" || fail "skipped"
check_tok_sizes i0

expect_ok "prep fake imdb dir" reel prep --valid-count 2 $A d1
expect_ok "prep fake imdb tarball" reel prep --valid-count 2 fake.tar.gz t1
expect_ok "prep fake imdb parent dir" reel prep --valid-count 2 --threads 1 imdb p1
[ "$(ini_get t1/prep.ini format)" = imdb ] && pass "tarball detected as imdb" || fail "tarball format"
[ "$(ini_get t1/prep.ini valid_docs)" = 2 ] && [ "$(ini_get t1/prep.ini train_docs)" = 5 ] && pass "valid-count 2 of 7" ||
  fail "valid counts"
for f in train.tok valid.tok test.tok unsup.tok vocab.txt labels.txt; do
  if cmp -s d1/$f t1/$f && cmp -s d1/$f p1/$f; then pass "$f identical from tarball, directory and parent"
  else fail "$f differs between tarball and directory"; fi
done

# ---- errors ----
expect_fail "missing input" "nope\.tar\.gz: cannot open input: No such file" reel prep nope.tar.gz e1
mkdir -p empty_dir
expect_fail "directory without the layout" "empty_dir: directory holds neither train/ nor aclImdb/; expected the extracted IMDb layout" \
  reel prep empty_dir e1
mkdir -p half/train/pos
expect_fail "layout without train/neg" "train/neg/ is missing; expected the extracted IMDb layout" reel prep half e1
mkdir -p noreviews/aclImdb && printf 'x' > noreviews/aclImdb/README && (cd noreviews && tar czf ../noreviews.tar.gz aclImdb)
expect_fail "archive without reviews" "noreviews\.tar\.gz: no training documents found; expected members aclImdb/train/pos" \
  reel prep noreviews.tar.gz e1
head -c $(($(stat -c %s fake.tar.gz) / 2)) fake.tar.gz > broken.tar.gz
expect_ok "prep into e2" reel prep --valid-count 2 fake.tar.gz e2
expect_fail "truncated archive" "broken\.tar\.gz: member aclImdb/.*: cannot read its data: truncated gzip input" \
  reel prep --valid-count 2 broken.tar.gz e2
[ -e e2/prep.ini ] && fail "prep.ini kept after a failed run" || pass "failed run removes prep.ini"
[ -e e2/train.tok ] && pass "earlier complete .tok files stay" || fail "train.tok of the earlier run vanished"
ls -a e2 | grep -q 'tmp' && fail "temporaries left after failure: $(ls -a e2)" || pass "no temporaries after failure"
head -c 5000 /dev/urandom > junk.tar.gz
expect_fail "not an archive" "junk\.tar\.gz: cannot open as a tar archive" reel prep junk.tar.gz e1
expect_fail "default valid count too large for imdb" "only 7 training documents, fewer than the default --valid-count of 5000" \
  reel prep $A e1
expect_fail "valid count too large" "--valid-count 100 is more than the 50 training documents" \
  reel prep --valid-count 100 s_train.tsv e1
expect_fail "imdb with --test" "apply to tsv/text input" reel prep --valid-count 1 --test s_test.tsv fake.tar.gz e1

printf 'label\tbody\npos\thello\n' > nocol.tsv
expect_fail "tsv missing text column" "nocol\.tsv: line 1: no column named 'text' in the header" reel prep nocol.tsv e1
expect_fail "tsv missing label column" "nocol\.tsv: line 1: no column named 'lab'" \
  reel prep --text-column body --label-column lab nocol.tsv e1
printf 'label\ttext\npos\tgood\nneg\tbad\textra\npos\tfine\n' > ragged.tsv
expect_fail "tsv ragged row" "ragged\.tsv: line 3: expected 2 tab-separated fields as in the header, found 3" \
  reel prep ragged.tsv e1
printf 'label\ttext\nmaybe\tunsure\n' > odd_test.tsv
expect_fail "tsv unknown test label" "odd_test\.tsv: line 2: label 'maybe' does not occur in the training file" \
  reel prep s_train.tsv e1 --test odd_test.tsv
expect_fail "tsv missing test file" "absent\.tsv: cannot open the test file" reel prep s_train.tsv e1 --test absent.tsv
: > empty.tsv
expect_fail "empty tsv" "empty\.tsv: line 1: the file is empty, expected a header row" reel prep empty.tsv e1
expect_fail "tsv given as a directory" "empty_dir: is a directory; --format tsv expects a file" \
  reel prep --format tsv empty_dir e1

expect_fail "no arguments" "expected INPUT and OUTDIR" reel prep
expect_fail "bad format" "--format 'csv': expected imdb, tsv or text" reel prep --format csv a b
expect_fail "bad vocab size" "--vocab-size 'abc': expected an integer" reel prep --vocab-size abc a b
expect_fail "count and fraction" "not both" reel prep --valid-count 1 --valid-fraction 0.1 a b
expect_fail "bad fraction" "--valid-fraction '1.5': expected a number in \[0, 1\)" reel prep --valid-fraction 1.5 a b
status=0; reel prep >/dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] && pass "usage errors exit with 2" || fail "usage error exit status $status"

# ---- under mpirun: rank 0 works, the others wait ----
if [ -n "${MPIEXEC:-}" ] && command -v "$MPIEXEC" >/dev/null; then
  expect_ok "prep under mpirun -np 2" mpireel 2 prep --valid-count 2 fake.tar.gz m1
  cmp -s m1/train.tok t1/train.tok && pass "mpirun output identical" || fail "mpirun output differs"
  expect_fail "prep error under mpirun" "nope\.tsv: cannot open input" mpireel 2 prep nope.tsv m2
fi

finish

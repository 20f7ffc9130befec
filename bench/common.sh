# Sourced by the benchmark scripts.

# prepare_imdb NAME REEL WORK: when $data is empty, prepares ../shared/data/aclImdb_v1.tar.gz with REEL
# into WORK/imdb and sets data to it (NAME: the script, for messages); a given $data is left alone.
prepare_imdb() {
  local name=$1 reel=$2 work=$3 archive=../shared/data/aclImdb_v1.tar.gz
  [ -z "$data" ] || return 0
  [ -f "$archive" ] || { echo "$name: $archive is missing; give a prepared data directory" >&2; exit 1; }
  echo "preparing $archive into $work/imdb"
  "$reel" prep "$archive" "$work/imdb" >/dev/null
  data=$work/imdb
}

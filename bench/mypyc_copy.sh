#!/usr/bin/env bash
# A copy of src/tokenward with the /verify hot path compiled by mypyc, to measure what compiling would gain (issue 13).
# Not how tokenward is built or shipped: the copy lives outside the source tree and is used only through PYTHONPATH.
#
#   bench/mypyc_copy.sh [DIR]                                     # default: .mypyc-copy (ignored by git)
#   PYTHONPATH=.mypyc-copy .venv/bin/python bench/verify.py --rotating
#
# Needs the dev install (mypy, which carries mypyc: make test does it), gcc and the Python headers.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
dir="${1:-.mypyc-copy}"
[ -x .venv/bin/mypyc ] || { echo "mypyc_copy: .venv/bin/mypyc is missing; run 'make test' (or make lint) first" >&2; exit 1; }
command -v gcc >/dev/null || { echo "mypyc_copy: gcc is missing: apt-get install -y gcc python3-dev" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir"
cp -r src/tokenward "$dir/"
# What a /verify request and its refusal run through (bench/README.md, "Compiled with mypyc").
modules=(
  apptokens/format apptokens/known apptokens/regulation apptokens/cache apptokens/service
  httpauth clientaddr storage/audit
  forwardauth/request_info forwardauth/service forwardauth/plugins/app_token forwardauth/plugins/basic
  web/middleware web/routes/verify
)
files=()
for m in "${modules[@]}"; do files+=("tokenward/$m.py"); done
(cd "$dir" && "$root/.venv/bin/mypyc" "${files[@]}" >build.log 2>&1) || { tail -n 30 "$dir/build.log" >&2; exit 1; }
echo "compiled ${#modules[@]} modules into $dir; measure with: PYTHONPATH=$dir .venv/bin/python bench/verify.py --rotating"

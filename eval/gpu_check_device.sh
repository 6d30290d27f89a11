#!/usr/bin/env bash
# The device machine's side of eval/gpu_check.py (eval/gpu_check.md): two calls on one warm machine.
#   bash eval/gpu_check_device.sh stage          call 1, carrying .gpu_check/a (eval/gpu_check_pack.py made it):
#                                                verify and install the wheels and the data, probe the image
#   bash eval/gpu_check_device.sh run [ARGS]     call 2, carrying .gpu_check/b, at once (the machine goes back
#                                                after 30 s idle): rebuild and verify the model package, run
#                                                eval/gpu_check.py ARGS; its JSON and log land in $OUT
# Everything it installs goes under /tmp (the image's own packages are not touched). Exit 3: a staging
# problem, named in one line; otherwise gpu_check.py's own status (0 all PASS, 1 a FAIL, 2 bad arguments).
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=${GPU_CHECK_STAGE:-/tmp/gpu_check_stage}
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
DATA=${GPU_CHECK_DATA:-/tmp/gpu_check_data}
PY=${GPU_CHECK_PYTHON:-python3}
OUTDIR=${OUT:-/tmp/gpu_check_out}

die() { echo "gpu_check_device: $*" >&2; exit 3; }
verify() {  # verify NAME...: each staged file against the packer's SHA256SUMS
    for name in "$@"; do
        (cd "$STAGE" && grep "  $name\$" SHA256SUMS | sha256sum -c --quiet -) \
            || die "$STAGE/$name: sha256 differs from SHA256SUMS (or is not listed); pack and send again"
    done
}

case "${1:-}" in
stage)
    [ -f .gpu_check/a/SHA256SUMS ] || die ".gpu_check/a was not carried: run eval/gpu_check_pack.py and name .gpu_check/a in carry"
    rm -rf "$STAGE" "$SITE" "$DATA" && mkdir -p "$STAGE" "$SITE" "$DATA" || die "cannot make $STAGE, $SITE, $DATA"
    cp -r .gpu_check/a/. "$STAGE/" || die "cannot copy .gpu_check/a to $STAGE"
    verify data.tar.gz $(cd "$STAGE" && ls wheels/*.whl)
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$STAGE"/wheels/*.whl \
        || die "pip install --target $SITE of the carried wheels failed"
    tar -xzf "$STAGE/data.tar.gz" -C "$DATA" || die "cannot unpack the data into $DATA"
    echo "gpu_check_device: staged the model's first part, $(ls "$STAGE"/wheels | tr '\n' ' ')and the data"
    nvidia-smi -L || echo "gpu_check_device: nvidia-smi failed"
    PYTHONPATH="$SITE:$PWD" $PY - <<'PROBE' || die "the image lacks something the check imports (above)"
import importlib.metadata as metadata
import sys

import torch

print("python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda, "GPU",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("transformers", "sentence-transformers", "accelerate", "datasets", "tokenizers", "huggingface-hub",
             "pyarrow", "safetensors", "scipy", "numpy", "pyyaml", "tqdm"):
    try:
        print(name, metadata.version(name))
    except metadata.PackageNotFoundError:
        print(name, "MISSING")
import accelerate, datasets, scipy, sentence_transformers, transformers, yaml  # noqa: E401,F401
print("imports ok")
PROBE
    echo "gpu_check_device: stage done; now call 2 at once: bash eval/gpu_check_device.sh run"
    ;;
run)
    shift
    [ -f "$STAGE/model.tar.gz.part0" ] || die "the first call's files are not on this machine ($STAGE): it was given back between the two calls; run both calls again"
    [ -f .gpu_check/b/model.tar.gz.part1 ] || die ".gpu_check/b was not carried: name .gpu_check/b in carry"
    cat "$STAGE/model.tar.gz.part0" .gpu_check/b/model.tar.gz.part1 > "$STAGE/model.tar.gz" || die "cannot join the model's parts"
    verify model.tar.gz
    tar -xzf "$STAGE/model.tar.gz" -C "$SITE" || die "cannot unpack the model into $SITE"
    mkdir -p "$OUTDIR" || die "cannot make $OUTDIR"
    export PYTHONPATH="$SITE:$PWD" SIMCSE_LAB_DATA="$DATA" SIMCSE_LAB_CACHE=/tmp/gpu_check_cache HF_HUB_OFFLINE=1 \
        TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
    $PY eval/gpu_check.py --output "$OUTDIR/gpu_check.json" "$@" 2>&1 | tee "$OUTDIR/gpu_check.log"
    exit "${PIPESTATUS[0]}"
    ;;
*)
    die "usage: bash eval/gpu_check_device.sh stage | run [gpu_check.py arguments]"
    ;;
esac

# Sourced by the lent-GPU scripts (gpu_lease.sh, gpu_eval.sh): the stage
# runner, and the install of what the machine lacks. The machine has python3
# with a CUDA torch and no internet, so mmengine, mmdet and their missing
# pure-Python dependencies come as wheels in .whl/ and mmcv 2.1.0 as its
# sdist there (BENCHMARKS.md lists them). Needs OUT and DEADLINE (seconds
# from the start that the whole script may take).
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
PY=${PY:-python3}
mkdir -p "$OUT"
log() { echo "[+${SECONDS}s] $*"; }
left() { echo $((DEADLINE - SECONDS)); }
stage() {  # stage NAME NEEDS_SECONDS COMMAND...  (ONLY=regex picks stages)
  local name=$1 need=$2; shift 2
  [[ $name =~ ${ONLY:-.} ]] || return 0
  if [ "$(left)" -lt "$need" ]; then log "SKIP $name ($(left) s left)"; return; fi
  log "START $name"
  timeout "$(left)" "$@"; log "END $name rc=$?"
}

install_wheels() {
  log "$(nvidia-smi -L 2>&1 | head -1)"
  $PY -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:/tmp/mmcv-2.1.0:$PWD
}

# build_mmcv cpu|cuda SECONDS: mmcv 2.1.0 from its sdist with its compiled
# ops, in place in /tmp/mmcv-2.1.0 (on PYTHONPATH). `cpu` builds the CPU
# kernels only; `cuda` the CUDA kernels too, for this GPU's architecture
# alone. Returns non-zero if the build fails or outlasts SECONDS, after
# printing how far ninja got.
build_mmcv() {
  local kernels=$1 limit=$2 args=()
  tar xzf .whl/mmcv-2.1.0.tar.gz -C /tmp
  if [ "$kernels" = cuda ]; then
    args=(FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$(
      $PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}")
    local inc
    inc=$($PY -c 'import os, torch; print(os.path.dirname(torch.__file__))')/include
    # Two of mmcv 2.1.0's CUDA sources include THC/THCAtomics.cuh, which
    # newer torch no longer ships; it had become a forward to this header.
    if [ ! -f "$inc/THC/THCAtomics.cuh" ]; then
      mkdir -p /tmp/thc_compat/THC
      echo '#include <ATen/cuda/Atomic.cuh>' >/tmp/thc_compat/THC/THCAtomics.cuh
      args+=(MMCV_CUDA_ARGS=-I/tmp/thc_compat)
      log "torch has no THC/THCAtomics.cuh: forwarding it to ATen/cuda/Atomic.cuh"
    fi
  else
    args=(CUDA_VISIBLE_DEVICES=)
  fi
  log "building mmcv 2.1.0 ops ($kernels kernels; ${args[*]}) on $(nproc) cores"
  (cd /tmp/mmcv-2.1.0 && env "${args[@]}" MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) \
    timeout "$limit" $PY setup.py build_ext --inplace >/tmp/mmcv_build.log 2>&1)
  local rc=$?
  log "mmcv build rc=$rc; ninja reached $(grep -o '^\[[0-9]*/[0-9]*\]' \
    /tmp/mmcv_build.log | tail -1)"
  if [ $rc -ne 0 ]; then
    grep -m 5 -B 2 -A 8 'error' /tmp/mmcv_build.log | head -60
    return $rc
  fi
  check_mmcv
}

# check_mmcv: import mmcv's extension, then mmcv.ops, then mmdet and the
# plugin, each in its own process, so a crash names the step; on a crash of
# the extension itself, cuda-gdb's backtrace of it.
check_mmcv() {
  local step
  for step in 'import torch, mmcv._ext' 'import mmcv.ops' \
      'import mmcv.ops, mmdet, mmdet_robust'; do
    $PY -X faulthandler -c "$step" >/tmp/check_mmcv.log 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
      log "FAILED (rc=$rc): $step"
      tail -25 /tmp/check_mmcv.log
      ldd /tmp/mmcv-2.1.0/mmcv/_ext*.so | grep -iE 'cuda|torch|c10|stdc'
      gcc --version | head -1
      [ "$step" = 'import torch, mmcv._ext' ] && command -v cuda-gdb \
        >/dev/null && timeout 120 cuda-gdb -batch -ex run -ex bt \
        --args $PY -c "$step" 2>&1 | grep -E '^#|signal' | head -40
      return 1
    fi
    log "ok: $step"
  done
  # not mmcv.ops.get_compiling_cuda_version(): with the CUDA kernels built
  # against torch 2.11 + CUDA 13.0 it crashed the interpreter (SIGSEGV)
  $PY -c 'import mmcv, mmdet; print("mmcv", mmcv.__version__, "mmdet", mmdet.__version__)'
}

#!/usr/bin/env bash
# Robust evaluation on a lent GPU machine (the `device` tool's), through
# MMDetection's own tools/test.py (what `mim test mmdet` runs), with mmcv 2.1.0
# built with its CUDA kernels, so the predictions' nms runs on the GPU.
#   OUT=<dir> bash benchmarks/gpu_eval.sh
# Carry .whl/ (gpu_common.sh), data/shapes and the demo's two checkpoints
# (work_dirs/demo/{std,mtd}/epoch_24.pth). Stages, in order, each skipped
# when the time left (DEADLINE seconds from the start) is too short:
#   nms_check      mmcv's nms and batched_nms on CUDA keep the boxes they keep
#                  on the CPU;
#   demo_std/mtd   the demo's robust-eval config (clean, cls/loc/con-PGD-20,
#                  DAG, dense DAG, RAP at eps 8) on its STD and MTD models
#                  and its 50 test images: the README table, computed on
#                  the GPU;
#   cuda_version   why mmcv.ops.get_compiling_cuda_version() crashed the
#                  interpreter: each of the extension's string-returning
#                  info functions in its own process, where the extension's
#                  symbol binds (LD_DEBUG), and cuda-gdb's backtrace of a
#                  crash (the image has no gdb);
#   ssd300/yolov3  the VOC robust-eval configs of SSD300-VGG16-BN and
#                  YOLOv3-D53 on NUM_TEST generated 300-px images with
#                  VOC class names, weights at their (random) initialisation:
#                  that the real-size path runs, and its seconds per image
#                  per attack (the untrained models' mAP means nothing).
# Each robustness.json (mAP and seconds per image of every entry) is copied
# to $OUT/<stage>.json. SETUP=0 skips the install and build (a dry run on a
# machine that has everything, e.g. `SETUP=0 PY=.venv/bin/python`).
set -uo pipefail
OUT=${OUT:-work_dirs/gpu_eval}
DEADLINE=${DEADLINE:-560}
NUM_TEST=${NUM_TEST:-16}
source benchmarks/gpu_common.sh
if [ "${SETUP:-1}" = 1 ]; then
  install_wheels
  build_mmcv cuda "${BUILD_SECONDS:-420}" || exit 1
fi
DEVICE=$($PY -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
TEST_PY=$($PY -c 'from mmdet_robust.tools.demo import MMDET_TOOLS as T; print(T)')/test.py

nms_check() {
  $PY - "$DEVICE" <<'PY'
import sys
import torch
from mmcv.ops import batched_nms, nms
device = sys.argv[1]
g = torch.Generator().manual_seed(0)
n = 6000
xy = torch.rand(n, 2, generator=g) * 280
boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 60], 1)
scores = (torch.randperm(n, generator=g) + 1) / n  # no ties to order
labels = torch.randint(0, 20, (n, ), generator=g)
cpu_keep = nms(boxes, scores, 0.45)[1]
dev_keep = nms(boxes.to(device), scores.to(device), 0.45)[1].cpu()
_, cpu_b = batched_nms(boxes, scores, labels, dict(iou_threshold=0.45))
_, dev_b = batched_nms(boxes.to(device), scores.to(device),
                       labels.to(device), dict(iou_threshold=0.45))
dev_b = dev_b.cpu()


def compare(name, cpu, dev):
    only_cpu = set(cpu.tolist()) - set(dev.tolist())
    only_dev = set(dev.tolist()) - set(cpu.tolist())
    same = torch.equal(cpu, dev)
    print(f'{name} on {device}: keeps {len(dev)} of {n} (CPU {len(cpu)}); '
          f'same indices in the same order: {same}; kept by the CPU '
          f'only: {len(only_cpu)}, by {device} only: {len(only_dev)}')
    return not only_cpu and not only_dev


ok = compare('nms', cpu_keep, dev_keep)
ok &= compare('batched_nms', cpu_b, dev_b)
sys.exit(not ok)
PY
}

robust_eval() {  # robust_eval NAME CONFIG CHECKPOINT [--cfg-options ...]
  local name=$1 cfg=$2 ckpt=$3; shift 3
  local wd=/tmp/wd_$name
  $PY "$TEST_PY" "$cfg" "$ckpt" --work-dir "$wd" "$@" >"$wd.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || tail -30 "$wd.log"
  [ -f "$wd/robustness.json" ] && cp "$wd/robustness.json" "$OUT/$name.json" \
    && cat "$wd/robustness.md"
  return $rc
}

random_init_checkpoint() {  # CONFIG OUT.pth: the model as built, seed 0
  $PY - "$1" "$2" <<'PY'
import sys
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmdet_robust  # noqa: F401 (registers the plugin's modules)
from mmdet.registry import MODELS
init_default_scope('mmdet')
torch.manual_seed(0)
model = MODELS.build(Config.fromfile(sys.argv[1]).model)
torch.save(dict(state_dict=model.state_dict(), meta=dict()), sys.argv[2])
PY
}

real_size_eval() {  # real_size_eval NAME CONFIG
  local root=/tmp/voc300/VOCdevkit/
  [ -d $root ] || $PY -m mmdet_robust.datasets.make_shapes --out /tmp/voc300 \
    --size 300 --num-train 1 --num-test "$NUM_TEST" \
    --class-names aeroplane bicycle bird boat >/dev/null || return 1
  random_init_checkpoint "$2" "/tmp/$1_init.pth" || return 1
  robust_eval "$1" "$2" "/tmp/$1_init.pth" --cfg-options \
    test_dataloader.dataset.data_root=$root \
    test_dataloader.num_workers=2 test_dataloader.persistent_workers=False
}

cuda_version() {
  local ext f
  ext=$($PY -c 'import mmcv._ext as e; print(e.__file__)')
  nm -DC "$ext" | grep -E 'get_compil|get_cudart'
  for f in get_compiler_version get_compiling_cuda_version; do
    $PY -X faulthandler -c "import torch, mmcv._ext as e; print(e.$f())"
    echo "$f rc=$?"
  done
  LD_DEBUG=bindings $PY -c "import torch, mmcv._ext as e
e.get_compiling_cuda_version()" 2>&1 | grep -E 'get_compiling|get_cudart' \
    | head -5
  command -v cuda-gdb >/dev/null && timeout 90 cuda-gdb -batch -ex run \
    -ex bt --args $PY -c "import torch, mmcv._ext as e
print(e.get_compiling_cuda_version())" 2>&1 \
    | grep -E '^#|signal|SIG' | head -30
  return 0
}

export -f cuda_version nms_check robust_eval random_init_checkpoint real_size_eval
export PY OUT DEVICE TEST_PY NUM_TEST
D=work_dirs/demo
stage nms_check 20 bash -c nms_check
DEMO_IMAGES="--cfg-options test_dataloader.dataset.indices=50"  # as make demo
stage demo_std 60 bash -c "robust_eval demo_std \
  configs/robust_eval/tiny_ssd_shapes.py $D/std/epoch_24.pth $DEMO_IMAGES"
stage demo_mtd 60 bash -c "robust_eval demo_mtd \
  configs/robust_eval/tiny_ssd_shapes.py $D/mtd/epoch_24.pth $DEMO_IMAGES"
stage ssd300 60 bash -c \
  "real_size_eval ssd300 configs/robust_eval/ssd300_vgg16_voc.py"
stage yolov3 60 bash -c \
  "real_size_eval yolov3 configs/robust_eval/yolov3_d53_voc.py"
stage cuda_version 30 bash -c cuda_version
log done

#!/usr/bin/env bash
# The GPU part of BENCHMARKS.md in one command, for a lent GPU machine that
# has python3 with a CUDA torch and no internet (the `device` tool's
# machines). Run from the repository root with the wheels and the mmcv sdist
# in .whl/ (BENCHMARKS.md lists them); results go to $OUT (default
# work_dirs/gpu). Stages run in order of importance and each is skipped when
# the time left (DEADLINE seconds from the start) is too short for it.
#
# mmcv 2.1.0 is built from its sdist with its compiled ops, CPU kernels only
# (97 s on 16 cores; with the CUDA kernels about 250 s): nothing timed here
# calls an mmcv op (training and attacks use no nms). Robust evaluation,
# which does, is gpu_eval.sh's.
set -uo pipefail
OUT=${OUT:-work_dirs/gpu}
DEADLINE=${DEADLINE:-560}
source benchmarks/gpu_common.sh
install_wheels
build_mmcv cpu 300 || exit 1

SSD=configs/ssd300_vgg16_std_voc.py
YOLO=configs/yolov3_d53_std_voc.py
YOLO_ITERS=${YOLO_ITERS:-3}  # timed iterations of the YOLOv3 tables
B=benchmarks/bench_adv.py
stage checks_ssd300 40 $PY benchmarks/gpu_checks.py $SSD --batch 8 \
  --out "$OUT/checks_ssd300.json"
stage bench_ssd300 70 $PY $B $SSD --batch 32 --out "$OUT/ssd300.json"
# a short real-size run: MTD (Algorithm 1) on SSD300-VGG16-BN, batch 32,
# AMP, through MMDetection's own tools/train.py, on a generated 300-px VOC tree
train_ssd300_mtd() {
  local D=/tmp/voc300/VOCdevkit/
  $PY -m mmdet_robust.datasets.make_shapes --out /tmp/voc300 --size 300 \
    --num-train 512 --num-test 8 --class-names aeroplane bicycle bird boat \
    && ln -sfn "$D/VOC2007" "$D/VOC2012"
  $PY /tmp/site/mmdet/.mim/tools/train.py \
    configs/ssd300_vgg16_mtd_voc.py --work-dir /tmp/wd_mtd --cfg-options \
    train_dataloader.dataset.dataset.datasets.0.data_root=$D \
    train_dataloader.dataset.dataset.datasets.1.data_root=$D \
    val_dataloader.dataset.data_root=$D test_dataloader.dataset.data_root=$D \
    train_cfg.max_iters=60 train_cfg.val_begin=1000000 \
    param_scheduler.0.end=20 optim_wrapper.type=AmpOptimWrapper \
    optim_wrapper.loss_scale=dynamic default_hooks.logger.interval=10 \
    default_hooks.checkpoint.interval=60 env_cfg.cudnn_benchmark=True \
    > "$OUT/train_ssd300_mtd.log" 2>&1
  grep -E "Iter\(train\)|Saving|Error" "$OUT/train_ssd300_mtd.log" | tail -8
}
export -f train_ssd300_mtd; export PY OUT
stage train_ssd300_mtd 100 bash -c train_ssd300_mtd

stage bench_ssd300_amp 70 $PY $B $SSD --batch 32 --amp --channels-last \
  --out "$OUT/ssd300_amp_cl.json"

stage bench_yolov3 100 $PY $B $YOLO --batch 32 --iters $YOLO_ITERS \
  --warmup 1 --out "$OUT/yolov3.json"
stage bench_yolov3_amp 100 $PY $B $YOLO --batch 32 --iters $YOLO_ITERS \
  --warmup 1 --amp --channels-last --out "$OUT/yolov3_amp_cl.json"
stage checks_yolov3 40 $PY benchmarks/gpu_checks.py $YOLO --batch 8 \
  --out "$OUT/checks_yolov3.json"
# the batch-32 GPU column of README's architecture table (Tables 3, 4, 6)
stage arch_table 120 $PY benchmarks/arch_table.py --batch 32 --iters 3 \
  --warmup 1 --out "$OUT/arch_table.json"
# where an iteration's time goes: GPU busy share, kernel launches, top ops
stage profile_yolov3_amp 90 $PY $B $YOLO --batch 32 --iters 3 --amp \
  --channels-last --profile --out "$OUT/profile_yolov3_amp_cl.json"
stage profile_yolov3 90 $PY $B $YOLO --batch 32 --iters 3 --profile \
  --out "$OUT/profile_yolov3.json"
stage profile_ssd300_amp 60 $PY $B $SSD --batch 32 --iters 3 --amp \
  --channels-last --profile --out "$OUT/profile_ssd300_amp_cl.json"
stage profile_ssd300 60 $PY $B $SSD --batch 32 --iters 3 --profile \
  --out "$OUT/profile_ssd300.json"
log done

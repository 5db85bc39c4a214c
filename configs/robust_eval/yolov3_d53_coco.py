# Robust evaluation (clean, cls-PGD, loc-PGD, DAG, RAP at eps 8) of any
# checkpoint trained with configs/yolov3_d53_{std,...,mtd}_coco.py:
#   mim test mmdet configs/robust_eval/yolov3_d53_coco.py --checkpoint x.pth
# Add the eps/steps sweeps with --cfg-options test_cfg.sweep=True.
_base_ = ['../yolov3_d53_std_coco.py', '../_base_/robust_eval/attacks_eps8.py']
test_dataloader = dict(batch_size=8)
# hours per attack on the full test set: each is saved as soon as it ends,
# so a re-run after an interruption computes only the missing ones
test_cfg = {{_base_.robust_test_cfg_long}}

# The tiny SSD's robust evaluation with one label per prior: each prior
# reports only its highest-scoring object class (the rule YOLOX's head
# predicts by) instead of every class above score_thr (SSD's rule). Same
# checkpoints, same attacks (they read the logits, not the detections):
#   mim test mmdet configs/robust_eval/tiny_ssd_shapes_one_label.py \
#       --checkpoint x.pth
_base_ = ['./tiny_ssd_shapes.py']
model = dict(bbox_head=dict(one_label_per_prior=True))

# STD: plain training of the tiny CPU detector on the synthetic shapes.
# The adversarial variants (tiny_ssd_{cls,loc,con,mtd}_shapes.py) inherit
# this file and change only `train_cfg`.
_base_ = [
    './_base_/models/tiny_ssd.py', './_base_/datasets/shapes_voc.py',
    './_base_/schedules/shapes_24e.py'
]

# Transfer attacks (paper Table 5): adversarial images made on a source
# model, evaluated on the checkpoint under test (the target):
#   mim test mmdet configs/robust_eval/tiny_ssd_shapes_transfer.py \
#       --checkpoint target.pth --cfg-options \
#       test_cfg.attacks.transfer_cls_pgd.source_checkpoint=source.pth \
#       test_cfg.attacks.transfer_loc_pgd.source_checkpoint=source.pth
# The source may be any detector config (own preprocessing and input size;
# set source_input_size when it differs from the target's).
_base_ = './tiny_ssd_shapes.py'
source = dict(source_config='configs/tiny_ssd_std_shapes.py',
              source_checkpoint=None)
test_cfg = dict(
    attacks=dict(
        _delete_=True,
        transfer_cls_pgd=dict(
            type='TransferAttack', **source,
            attack=dict(type='PGDAttack', task='cls', eps=8., steps=20)),
        transfer_loc_pgd=dict(
            type='TransferAttack', **source,
            attack=dict(type='PGDAttack', task='loc', eps=8., steps=20))))

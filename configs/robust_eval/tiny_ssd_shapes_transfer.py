# Transfer attacks (paper sec. 5.7, Table 5): adversarial images made on a
# source model, evaluated on the checkpoint under test (the target):
#   mim test mmdet configs/robust_eval/tiny_ssd_shapes_transfer.py \
#     --checkpoint target.pth --cfg-options \
#     test_cfg.attacks.transfer_{cls_pgd,loc_pgd,dag,rap}.source_checkpoint=S
# (S: the source checkpoint; the shell expands the braces into four keys).
# The source attacks are the white-box ones of the base config (eps 8).
# The source may be any detector config (own preprocessing and input size;
# set source_input_size when it differs from the target's).
_base_ = './tiny_ssd_shapes.py'
source = dict(type='TransferAttack',
              source_config='configs/tiny_ssd_std_shapes.py',
              source_checkpoint=None)
test_cfg = dict(
    attacks=dict(
        _delete_=True,
        transfer_cls_pgd=dict(
            **source, attack={{_base_.test_cfg.attacks.cls_pgd}}),
        transfer_loc_pgd=dict(
            **source, attack={{_base_.test_cfg.attacks.loc_pgd}}),
        transfer_dag=dict(**source, attack={{_base_.test_cfg.attacks.dag}}),
        transfer_rap=dict(**source, attack={{_base_.test_cfg.attacks.rap}})))

"""Validation under attack during training."""
from typing import Optional, Sequence

from mmengine.runner import ValLoop

from mmdet.registry import LOOPS
from .attacked_evaluation import AttackedEvaluation, flat_metrics
from .robust_test_loop import attack_configs


@LOOPS.register_module()
class RobustValLoop(ValLoop):
    """``ValLoop`` that also validates under attack.

    Each validation reports the clean entry and every attack as
    ``clean/pascal_voc/mAP``, ``cls_pgd/pascal_voc/mAP``, ... (the same
    entries as :class:`RobustTestLoop`, without its report files), so
    training can be watched for robustness and
    ``default_hooks.checkpoint.save_best='cls_pgd/pascal_voc/mAP'`` keeps
    the most robust checkpoint instead of the most accurate one. Each
    attack's per-image statistics are logged next to its metrics, as means
    over the validation images (``cls_pgd/linf``: the perturbation's mean
    max norm in pixels; DAG's ``dag/dag_iters``, ``dag/dag_at_cap``)::

        val_cfg = dict(type='RobustValLoop', attacks=dict(
            cls_pgd=dict(type='PGDAttack', task='cls', eps=8, steps=10)))

    Args:
        attacks: ``{name: attack config}`` as ``RobustTestLoop``'s; each
            multiplies the cost of a validation by about its number of
            gradient steps, so a few PGD steps on a validation subset
            (``val_dataloader.dataset.indices``) are the usual choice.
        fp16: predict and attack under autocast (CUDA only).
    """

    def __init__(self, runner, dataloader, evaluator,
                 attacks: Optional[dict] = None, fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.entries = AttackedEvaluation(runner, self.evaluator, evaluator,
                                          attack_configs(attacks), 'val_cfg',
                                          fp16)

    def run(self) -> dict:
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = flat_metrics(
            self.entries.evaluate(len(self.dataloader.dataset)))
        metrics.update(flat_metrics(self.entries.image_stats))
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_val_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.entries.process(self.runner.model, data_batch)
        self.runner.call_hook(
            'after_val_iter', batch_idx=idx, data_batch=data_batch,
            outputs=outputs)

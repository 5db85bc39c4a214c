"""Clean and adversarial evaluation in one pass over the test set."""
import copy
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import TestLoop, autocast

from mmdet.registry import LOOPS, MODELS
from ..attacks.base import gt_in_input_coords, unwrap
from ..evaluation.report import RobustnessReport
from .loops import preprocessed


def expand_sweep(tasks: Sequence[str] = ('cls', 'loc'),
                 eps: Sequence[float] = (2, 4, 6, 8, 10),
                 steps: Sequence[int] = (1, 2, 5, 10, 20),
                 base_eps: float = 8., base_steps: int = 20) -> Dict[str, dict]:
    """PGD attacks of the paper's sweeps (Fig. 5: steps at eps 8; Fig. 6:
    eps at 20 steps), named ``{task}_pgd_eps{e}`` and ``{task}_pgd_steps{k}``.
    """
    attacks = {}
    for task in tasks:
        for e in eps:
            attacks[f'{task}_pgd_eps{e:g}'] = dict(
                type='PGDAttack', task=task, eps=float(e), steps=base_steps)
        for k in steps:
            attacks[f'{task}_pgd_steps{k}'] = dict(
                type='PGDAttack', task=task, eps=float(base_eps), steps=k)
    return attacks


def predict_preprocessed(model, inputs, data_samples: Sequence,
                         fp16: bool = False) -> list:
    """``model.test_step`` on an already preprocessed (clean or adversarial)
    batch; predictions go to copies of ``data_samples``."""
    detector = unwrap(model)
    data = dict(inputs=inputs, data_samples=[s.clone() for s in data_samples])
    with torch.no_grad(), autocast(enabled=fp16), \
            preprocessed(detector.data_preprocessor):
        return model.test_step(data)


def check_annotations(data_samples: Sequence) -> None:
    """Attacks maximise losses against GT boxes: the test set needs them."""
    for sample in data_samples:
        gt = sample.get('gt_instances')
        if gt is None or 'bboxes' not in gt or 'labels' not in gt:
            raise ValueError(
                'robust evaluation needs GT boxes: the attacks maximise '
                'losses against the annotations, but the test samples have '
                'none. Use an annotated test split (e.g. VOC2007 test, COCO '
                "val; not VOC2012 test) and put dict(type='LoadAnnotations', "
                'with_bbox=True) in the test pipeline.')


@LOOPS.register_module()
class RobustTestLoop(TestLoop):
    """``TestLoop`` that also evaluates every configured attack.

    For each test batch: the clean predictions, then per attack the
    adversarial batch (generated with gradients enabled inside the otherwise
    no-grad test loop, on GT copies scaled to the network input) and its
    predictions, each fed to its own copy of the test evaluator (so DDP
    gathering works as in mmengine). Metrics are reported as
    ``clean/pascal_voc/mAP``, ``cls_pgd/pascal_voc/mAP``, ... and the
    attack x mAP table is logged and written to ``<work_dir>/robustness.json``
    and ``.md``.

    Args:
        attacks: ``{name: attack config}``, e.g. ``dict(cls_pgd=dict(
            type='PGDAttack', task='cls', eps=8, steps=20))``; an attack
            set to ``None`` (``--cfg-options test_cfg.attacks.dag=None``) is
            skipped.
        sweep: adds the eps and steps sweeps of cls- and loc-PGD:
            ``True`` for the paper's (``--cfg-options test_cfg.sweep=True``)
            or a dict of :func:`expand_sweep` arguments.
        report_name: file stem of the report in the work dir.
    """

    def __init__(self, runner, dataloader, evaluator,
                 attacks: Optional[dict] = None,
                 sweep: Union[bool, dict, None] = None,
                 report_name: str = 'robustness', fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        attack_cfgs = {name: cfg for name, cfg in (attacks or {}).items()
                       if cfg is not None}
        if sweep is True:
            sweep = {}
        if isinstance(sweep, dict):
            attack_cfgs.update(expand_sweep(**sweep))
        elif sweep not in (None, False):
            raise TypeError(f'sweep must be True, False or a dict of '
                            f'expand_sweep arguments, got {sweep!r}')
        if 'clean' in attack_cfgs:
            raise ValueError("'clean' is reserved for the unattacked inputs")
        self.attack_cfgs = attack_cfgs
        self.attacks = {name: MODELS.build(copy.deepcopy(cfg))
                        for name, cfg in attack_cfgs.items()}
        self.evaluators = {'clean': self.evaluator}
        for name in self.attacks:
            ev = runner.build_evaluator(copy.deepcopy(evaluator))
            ev.dataset_meta = self.evaluator.dataset_meta
            self.evaluators[name] = ev
        self.report_name = report_name

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        size = len(self.dataloader.dataset)
        per_attack = {name: ev.evaluate(size)
                      for name, ev in self.evaluators.items()}
        metrics = {f'{name}/{key}': value
                   for name, m in per_attack.items()
                   for key, value in m.items()}
        if is_main_process():
            self._report(per_attack)
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        if self.attacks:
            check_annotations(data_batch['data_samples'])
        model = self.runner.model
        detector = unwrap(model)
        with torch.no_grad():
            data = detector.data_preprocessor(data_batch, False)
        outputs = predict_preprocessed(model, data['inputs'],
                                       data['data_samples'], self.fp16)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        if self.attacks:
            to_attack = dict(data, data_samples=gt_in_input_coords(
                data['data_samples']))
        for name, attack in self.attacks.items():
            with autocast(enabled=self.fp16):
                adv = attack(detector, to_attack)
            adv_outputs = predict_preprocessed(
                model, adv['inputs'], data['data_samples'], self.fp16)
            self.evaluators[name].process(
                data_samples=adv_outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter', batch_idx=idx, data_batch=data_batch,
            outputs=outputs)

    def _report(self, per_attack: Dict[str, dict]) -> None:
        cfg = self.runner.cfg
        report = RobustnessReport(
            per_attack, settings=self.attack_cfgs,
            model=dict(config=getattr(cfg, 'filename', None),
                       checkpoint=cfg.get('load_from')))
        paths = report.write(self.runner.work_dir, self.report_name)
        print_log('robustness (mAP@0.5, %):\n' + report.to_markdown() +
                  f'written to {paths["json"]} and {paths["md"]}',
                  logger='current')

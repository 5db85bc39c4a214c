"""Clean and adversarial evaluation in one pass over the test set."""
import copy
import json
import os
import os.path as osp
import time
from collections import defaultdict
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel
from mmengine.runner import TestLoop, autocast

from mmdet.registry import LOOPS, MODELS
from ..attacks.base import gt_in_input_coords, unwrap
from ..attacks.task_losses import TaskKeyError
from ..evaluation.coco import (share_coco_annotations,
                               with_no_detection_metrics)
from ..evaluation.report import RobustnessReport
from .hooks import CheckpointFitHook, ensure_hook
from .loops import preprocessed


def expand_sweep(tasks: Sequence[str] = ('cls', 'loc'),
                 eps: Sequence[float] = (2, 4, 6, 8, 10),
                 steps: Sequence[int] = (1, 2, 5, 10, 20),
                 base_eps: float = 8.,
                 base_steps: int = 20) -> Dict[str, dict]:
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


def json_normalised(obj):
    """``obj`` as it reads back from the report's JSON (tuples as lists,
    unknown types as strings): how fingerprints are compared."""
    return json.loads(json.dumps(obj, default=str))


def attack_configs(attacks: Optional[dict] = None,
                   sweep: Union[bool, dict, None] = None) -> Dict[str, dict]:
    """``{name: attack config}`` that ``RobustTestLoop`` runs for its
    ``attacks`` and ``sweep`` arguments (entries set to ``None`` dropped,
    the sweep expanded), in report order."""
    cfgs = {name: cfg for name, cfg in (attacks or {}).items()
            if cfg is not None}
    if sweep is True:
        sweep = {}
    if isinstance(sweep, dict):
        cfgs.update(expand_sweep(**sweep))
    elif sweep not in (None, False):
        raise TypeError(f'sweep must be True, False or a dict of '
                        f'expand_sweep arguments, got {sweep!r}')
    if 'clean' in cfgs:
        raise ValueError("'clean' is reserved for the unattacked inputs")
    return cfgs


def build_attack(name: str, cfg: dict, detector=None):
    """Build one entry of ``test_cfg.attacks`` and check that it can run on
    ``detector`` (if given); errors name the entry."""
    def named(err: Exception) -> Exception:
        return type(err)(f'attack {name!r} of test_cfg.attacks: {err}')

    try:
        attack = MODELS.build(copy.deepcopy(cfg))
    except KeyError as err:  # the registry's "X is not in the ... registry"
        raise ValueError(f'attack {name!r} of test_cfg.attacks: unknown '
                         f'type {cfg.get("type")!r} ({err})') from None
    except (TypeError, ValueError) as err:
        raise named(err) from None
    if detector is not None:
        try:
            attack.check(detector)
        except (TypeError, ValueError, TaskKeyError) as err:
            raise named(err) from None
    return attack


def predict_preprocessed(model, inputs, data_samples: Sequence,
                         fp16: bool = False) -> list:
    """``model.test_step`` on an already preprocessed (clean or adversarial)
    batch; predictions go to copies of ``data_samples``."""
    detector = unwrap(model)
    data = dict(inputs=inputs, data_samples=[s.clone() for s in data_samples])
    with torch.no_grad(), autocast(enabled=fp16), \
            preprocessed(detector.data_preprocessor):
        return model.test_step(data)


EMPTY_TEST_SET = ('the test set is empty: check test_dataloader.dataset '
                  '(data_root, ann_file, indices)')


def check_fp16_device(model, fp16: bool) -> None:
    """``fp16`` evaluation needs CUDA: on the CPU autocast computes in
    bfloat16, which mmcv's CPU nms (every dense head's ``predict``) rejects
    deep inside MMDetection, after the checkpoint has loaded."""
    if fp16 and next(unwrap(model).parameters()).device.type == 'cpu':
        raise ValueError(
            'test_cfg.fp16=True needs a CUDA device: on the CPU autocast '
            "runs in bfloat16, which mmcv's CPU nms (used by the detector's "
            'predict) does not take. Evaluate in fp32 on the CPU (drop '
            'test_cfg.fp16).')


def check_not_tta(model) -> None:
    """``tools/test.py --tta`` wraps the detector in a ``BaseTTAModel``,
    which predicts merged augmented views: an attack needs the detector
    itself (one input, its losses), so name the flag, not the wrapper."""
    if isinstance(unwrap(model), BaseTTAModel):
        raise ValueError(
            'RobustTestLoop does not support test-time augmentation (--tta): '
            'attacks are generated on, and evaluated with, the detector '
            'itself. Run without --tta (or drop tta_model from the model).')


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


class FinishedEntry(NamedTuple):
    """One entry of an earlier run's report, as read back from its JSON."""
    metrics: dict
    settings: Optional[dict]  # the attack's config (None for clean)
    fingerprint: dict
    seconds_per_image: Optional[float]


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
        per_attack_passes: one pass over the test set per entry (clean, then
            each attack) instead of one pass for all; each entry is saved
            as soon as its pass ends, so an interrupted run loses at most
            the attack in progress. Same compute (the clean forward is not
            repeated); only data loading is.
        resume: reuse the entries of an existing report in the work dir
            whose fingerprint (checkpoint file, test set size, attack
            settings) matches, instead of recomputing them; report entries of
            other attacks on the same checkpoint are kept, so attacks can be
            run one at a time (``--cfg-options test_cfg.attacks.dag=None``).
    """

    def __init__(self, runner, dataloader, evaluator,
                 attacks: Optional[dict] = None,
                 sweep: Union[bool, dict, None] = None,
                 report_name: str = 'robustness', fp16: bool = False,
                 per_attack_passes: bool = False,
                 resume: bool = True) -> None:
        try:
            super().__init__(runner, dataloader, evaluator, fp16)
        except ValueError as err:  # numpy's, as mmengine serialises no data
            if 'need at least one array' not in str(err):
                raise
            raise ValueError(EMPTY_TEST_SET) from err
        if len(self.dataloader.dataset) == 0:
            raise ValueError(EMPTY_TEST_SET)
        check_not_tta(runner.model)
        check_fp16_device(runner.model, fp16)
        ensure_hook(runner, CheckpointFitHook)  # no half-loaded models
        self.attack_cfgs = attack_cfgs = attack_configs(attacks, sweep)
        detector = unwrap(runner.model)
        self.attacks = {name: build_attack(name, cfg, detector)
                        for name, cfg in attack_cfgs.items()}
        self.evaluators = {'clean': self.evaluator}
        for name in self.attacks:
            ev = runner.build_evaluator(copy.deepcopy(evaluator))
            ev.dataset_meta = self.evaluator.dataset_meta
            share_coco_annotations(ev, self.evaluator)
            self.evaluators[name] = ev
        self.report_name = report_name
        self.per_attack_passes = per_attack_passes
        self.resume = resume
        self._seconds = defaultdict(float)  # per entry, on this process
        self._images = defaultdict(int)
        self._reused_seconds = {}

    @property
    def report_path(self) -> str:
        return osp.join(self.runner.work_dir, f'{self.report_name}.json')

    def fingerprints(self) -> Dict[str, dict]:
        """What each entry of the report depends on: the checkpoint file, the
        test set size and the attack's settings (JSON-normalised). A
        finished entry with the same fingerprint is reused instead of
        recomputed."""
        ckpt = self.runner.cfg.get('load_from')
        stat = os.stat(ckpt) if ckpt and osp.isfile(ckpt) else None
        source = dict(checkpoint=ckpt,
                      checkpoint_size=stat.st_size if stat else None,
                      checkpoint_mtime=stat.st_mtime if stat else None,
                      num_images=len(self.dataloader.dataset))
        return json_normalised(
            {name: dict(source, attack=self.attack_cfgs.get(name))
             for name in self.evaluators})

    def finished_entries(self) -> Tuple[Dict[str, FinishedEntry],
                                        Dict[str, FinishedEntry]]:
        """Entries an earlier (interrupted or partial) run wrote for the same
        checkpoint and test set: ``(reusable, others)``, where ``reusable``
        are this run's attacks with unchanged settings (not recomputed) and
        ``others`` are further attacks kept in the report, each
        ``{name: FinishedEntry}``, decided on rank 0 and shared. Without a
        checkpoint file nothing ties entries to a model.
        """
        reusable, others = {}, {}
        source = {k: v for k, v in self._prints['clean'].items()
                  if k != 'attack'}
        if self.resume and is_main_process() and \
                source['checkpoint_size'] is not None and \
                osp.isfile(self.report_path):
            with open(self.report_path) as f:
                old = json.load(f)
            prints = old.get('fingerprints', {})
            for name, metrics in old.get('metrics', {}).items():
                fp = dict(prints.get(name, {}))
                attack = fp.pop('attack', None)
                if fp != source:
                    continue  # another checkpoint or test set
                entry = FinishedEntry(
                    metrics, old.get('settings', {}).get(name), prints[name],
                    old.get('seconds_per_image', {}).get(name))
                if name not in self.evaluators:
                    others[name] = entry
                elif attack == self._prints[name]['attack']:
                    reusable[name] = entry
        shared = [(reusable, others)]
        broadcast_object_list(shared)
        return shared[0]

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        self._prints = self.fingerprints()
        reusable, self._kept = self.finished_entries()
        results = {name: e.metrics for name, e in reusable.items()}
        self._reused_seconds = {name: e.seconds_per_image
                                for name, e in reusable.items()}
        if results:
            print_log(f'reusing finished entries of {self.report_path}: '
                      f'{", ".join(results)}', logger='current')
        pending = [name for name in self.evaluators if name not in results]
        passes = [[name] for name in pending] if self.per_attack_passes \
            else [pending] * bool(pending)
        size = len(self.dataloader.dataset)
        for names in passes:
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch, names)
            results.update({name: with_no_detection_metrics(
                self.evaluators[name], self.evaluators[name].evaluate(size),
                name) for name in names})
            if is_main_process():  # each finished pass is saved at once
                self._report(results, log=names is passes[-1])
        per_attack = {name: results[name] for name in self.evaluators}
        if is_main_process() and not passes:
            self._report(per_attack, log=True)
        metrics = {f'{name}/{key}': value
                   for name, m in per_attack.items()
                   for key, value in m.items()}
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def run_iter(self, idx, data_batch: Sequence[dict],
                 names: Optional[Sequence[str]] = None) -> None:
        """Evaluate ``names`` (default: clean and every attack) on a batch."""
        names = list(self.evaluators) if names is None else names
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        attacks = [name for name in names if name != 'clean']
        if attacks:
            check_annotations(data_batch['data_samples'])
        model = self.runner.model
        detector = unwrap(model)
        with torch.no_grad():
            data = detector.data_preprocessor(data_batch, False)
        outputs = None
        if 'clean' in names:
            start = time.perf_counter()
            outputs = predict_preprocessed(model, data['inputs'],
                                           data['data_samples'], self.fp16)
            self.evaluator.process(data_samples=outputs,
                                   data_batch=data_batch)
            self._clock('clean', start, len(outputs))
        if attacks:
            to_attack = dict(data, data_samples=gt_in_input_coords(
                data['data_samples']))
        for name in attacks:
            start = time.perf_counter()
            with autocast(enabled=self.fp16):
                adv = self.attacks[name](detector, to_attack)
            adv_outputs = predict_preprocessed(
                model, adv['inputs'], data['data_samples'], self.fp16)
            self.evaluators[name].process(
                data_samples=adv_outputs, data_batch=data_batch)
            self._clock(name, start, len(adv_outputs))
            outputs = adv_outputs if outputs is None else outputs
        self.runner.call_hook(
            'after_test_iter', batch_idx=idx, data_batch=data_batch,
            outputs=outputs)

    def _clock(self, name: str, start: float, images: int) -> None:
        """Add the time since ``start`` to entry ``name``. The metric's
        ``process`` has moved the predictions to the CPU by then, so on a
        GPU the kernels have finished."""
        self._seconds[name] += time.perf_counter() - start
        self._images[name] += images

    def seconds_per_image(self) -> Dict[str, Optional[float]]:
        """Wall time per test image of each entry this run computed (or the
        earlier run it reused), on this process."""
        timed = {name: self._seconds[name] / self._images[name]
                 for name in self._images}
        return dict(self._reused_seconds, **timed)

    def _report(self, results: Dict[str, dict], log: bool = True) -> None:
        """Write this run's entries (in config order) and the kept ones of
        earlier runs on the same checkpoint."""
        ordered = {name: results[name] for name in self.evaluators
                   if name in results}
        kept = self._kept
        metrics = dict(ordered,
                       **{name: e.metrics for name, e in kept.items()})
        settings = dict(self.attack_cfgs,
                        **{name: e.settings for name, e in kept.items()})
        prints = {name: self._prints[name] for name in ordered}
        prints.update({name: e.fingerprint for name, e in kept.items()})
        seconds = self.seconds_per_image()
        seconds = dict({name: seconds.get(name) for name in ordered},
                       **{name: e.seconds_per_image
                          for name, e in kept.items()})
        cfg = self.runner.cfg
        report = RobustnessReport(
            metrics, settings=settings,
            model=dict(config=getattr(cfg, 'filename', None),
                       checkpoint=cfg.get('load_from')),
            fingerprints=prints, seconds_per_image=seconds)
        paths = report.write(self.runner.work_dir, self.report_name)
        if not log:
            return
        print_log('robustness (mAP@0.5, %):\n' + report.to_markdown() +
                  f'written to {paths["json"]} and {paths["md"]}',
                  logger='current')

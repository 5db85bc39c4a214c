"""Clean and attacked predictions of each batch, every entry scored by its
own copy of the evaluator: what ``RobustTestLoop`` and ``RobustValLoop``
share."""
import copy
import json
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import all_gather_object, get_rank
from mmengine.runner import autocast

from ..attacks.base import (CHECK_ERRORS, build_named, gt_in_input_coords,
                            unwrap)
from ..evaluation.coco import (share_coco_annotations,
                               with_no_detection_metrics)
from ..models import let_ssd_head_predict
from .loops import preprocessed


def build_attack(name: str, cfg: dict, detector=None,
                 where: str = 'test_cfg.attacks'):
    """Build entry ``name`` of the loop's attacks (config path ``where``)
    and check that it can run on ``detector`` (if given); errors name the
    entry."""
    entry = f'attack {name!r} of {where}'
    attack = build_named(cfg, entry)
    if detector is not None:
        try:
            attack.check(detector)
        except CHECK_ERRORS as err:
            raise type(err)(
                f'{entry}: {err}; to run the other attacks without this '
                f'one: --cfg-options {where}.{name}=None') from None
    return attack


def predict_preprocessed(model, inputs, data_samples: Sequence,
                         fp16: bool = False) -> list:
    """``model.test_step`` on an already preprocessed (clean or adversarial)
    batch; predictions go to copies of ``data_samples``. A stock
    ``SSDHead`` gets :class:`StableSSDHead`'s fix first."""
    detector = unwrap(model)
    let_ssd_head_predict(detector)
    data = dict(inputs=inputs, data_samples=[s.clone() for s in data_samples])
    with torch.no_grad(), autocast(enabled=fp16), \
            preprocessed(detector.data_preprocessor):
        return model.test_step(data)


def check_fp16_device(model, fp16: bool, where: str) -> None:
    """``fp16`` evaluation needs CUDA: on the CPU autocast computes in
    bfloat16, which mmcv's CPU nms (every dense head's ``predict``) rejects
    deep inside MMDetection, after the checkpoint has loaded. ``where``:
    the loop's config key, for the message."""
    if fp16 and next(unwrap(model).parameters()).device.type == 'cpu':
        raise ValueError(
            f'{where}.fp16=True needs a CUDA device: on the CPU autocast '
            "runs in bfloat16, which mmcv's CPU nms (used by the detector's "
            f'predict) does not take. Evaluate in fp32 on the CPU (drop '
            f'{where}.fp16).')


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


def flat_metrics(results: Dict[str, dict]) -> Dict[str, float]:
    """``{entry: {key: value}}`` as the loops report it: ``entry/key``
    (``clean/pascal_voc/mAP``, ``cls_pgd/pascal_voc/mAP``, ...)."""
    return {f'{name}/{key}': value
            for name, metrics in results.items()
            for key, value in metrics.items()}


def same_attack(attacks: Dict[str, dict]) -> Dict[str, str]:
    """``{name: first name with the same config}`` over ``attacks`` (in
    order; configs compared as JSON, so ``eps=8`` and ``eps=8.0`` stay
    apart)."""
    first = {}
    return {name: first.setdefault(
        json.dumps(cfg, sort_keys=True, default=str), name)
        for name, cfg in attacks.items()}


class AttackedEvaluation:
    """The entries ``clean`` and one per attack, each with its evaluator.

    Per batch (:meth:`process`): the clean predictions, then per attack the
    adversarial batch (generated with gradients enabled inside the no-grad
    loop, on GT copies scaled to the network input, so the metric's samples
    are untouched) and its predictions. Entries with the same attack config
    (the sweep's ``cls_pgd_eps8`` and ``cls_pgd_steps20`` are ``cls_pgd``)
    share one adversarial batch when processed together: the attacks are
    deterministic (per-image seeds), so the result is the one a separate
    run gives, and each such entry reports that batch's time. Each
    attack's evaluator is built from ``evaluator_cfg`` when this is built,
    before a tool adds metrics to the clean one (``tools/test.py --out``);
    ``CocoMetric`` copies share the clean one's annotation index.

    Args:
        runner: the runner (its model and ``build_evaluator``).
        evaluator: the loop's evaluator, which scores the clean entry.
        evaluator_cfg: the config (or evaluator) it was built from.
        attacks: ``{name: attack config}``, in report order.
        cfg_key: the loop's config key (``test_cfg``, ``val_cfg``), for
            error messages.
        fp16: predict and attack under autocast (refused on the CPU).
    """

    def __init__(self, runner, evaluator, evaluator_cfg,
                 attacks: Dict[str, dict], cfg_key: str,
                 fp16: bool = False) -> None:
        check_fp16_device(runner.model, fp16, cfg_key)
        detector = unwrap(runner.model)
        self.attacks = {
            name: build_attack(name, cfg, detector, f'{cfg_key}.attacks')
            for name, cfg in attacks.items()}
        self.evaluators = {'clean': evaluator}
        for name in self.attacks:
            ev = runner.build_evaluator(copy.deepcopy(evaluator_cfg))
            ev.dataset_meta = evaluator.dataset_meta
            share_coco_annotations(ev, evaluator)
            self.evaluators[name] = ev
        self.same_attack = same_attack(attacks)
        self.fp16 = fp16
        self._seconds = defaultdict(float)  # per entry, on this process
        self._images = defaultdict(int)
        # {entry: {stat: {image: value}}} of the attacks' last_image_stats
        self._image_stats = defaultdict(lambda: defaultdict(dict))
        self.image_stats: Dict[str, Dict[str, float]] = {}

    def process(self, model, data_batch: dict,
                names: Optional[Sequence[str]] = None) -> List:
        """Predict and score entries ``names`` (default: all) on one batch
        of the dataloader; returns the first entry's predictions (for the
        loop's hooks)."""
        names = list(self.evaluators) if names is None else names
        attacks = [name for name in names if name != 'clean']
        if attacks:
            check_annotations(data_batch['data_samples'])
        detector = unwrap(model)
        with torch.no_grad():
            data = detector.data_preprocessor(data_batch, False)
        samples = data['data_samples']
        outputs = None
        if 'clean' in names:
            start = time.perf_counter()
            outputs = predict_preprocessed(model, data['inputs'], samples,
                                           self.fp16)
            self.evaluators['clean'].process(data_samples=outputs,
                                             data_batch=data_batch)
            self._clock('clean', time.perf_counter() - start, len(outputs))
        if attacks:
            to_attack = dict(data,
                             data_samples=gt_in_input_coords(samples))
        batches = {}  # a config's first entry -> (attack, predictions)
        seconds = {}  # ... -> the time its computing entry took
        for name in attacks:
            first = self.same_attack[name]
            computes = first not in batches
            if computes:
                start = time.perf_counter()
                attack = self.attacks[name]
                with autocast(enabled=self.fp16):
                    adv = attack(detector, to_attack)
                batches[first] = (attack, predict_preprocessed(
                    model, adv['inputs'], samples, self.fp16))
            attack, adv_outputs = batches[first]
            self._record_image_stats(name, attack, samples)
            self.evaluators[name].process(
                data_samples=adv_outputs, data_batch=data_batch)
            if computes:
                seconds[first] = time.perf_counter() - start
            self._clock(name, seconds[first], len(adv_outputs))
            outputs = adv_outputs if outputs is None else outputs
        return outputs

    def evaluate(self, size: int, names: Optional[Sequence[str]] = None
                 ) -> Dict[str, dict]:
        """``{name: metrics}`` of entries ``names`` (default: all) over the
        ``size`` samples processed (gathered across ranks). The means of
        their attacks' per-image statistics go to :attr:`image_stats`."""
        names = list(self.evaluators) if names is None else names
        self._gather_image_stats(names)
        return {name: with_no_detection_metrics(
            self.evaluators[name], self.evaluators[name].evaluate(size), name)
            for name in names}

    def _record_image_stats(self, name: str, attack,
                            data_samples: Sequence) -> None:
        """Keep ``attack``'s ``last_image_stats`` per test image for entry
        ``name`` (by its path: a sample the distributed sampler repeats to
        even out the shards counts once)."""
        for stat, values in attack.last_image_stats.items():
            per_image = self._image_stats[name][stat]
            for sample, value in zip(data_samples, values.tolist()):
                key = sample.metainfo.get('img_path',
                                          sample.metainfo.get('img_id'))
                if key is None:
                    key = (get_rank(), len(per_image))
                per_image[key] = value

    def _gather_image_stats(self, names: Sequence[str]) -> None:
        """:attr:`image_stats` ``{name: {stat: mean over the test images}}``
        for ``names``, across ranks; their records are then dropped (the
        validation loop evaluates every epoch)."""
        local = {name: {stat: dict(values) for stat, values in
                        self._image_stats.pop(name, {}).items()}
                 for name in names}
        merged = defaultdict(lambda: defaultdict(dict))
        for rank_stats in all_gather_object(local):
            for name, stats in rank_stats.items():
                for stat, values in stats.items():
                    merged[name][stat].update(values)
        self.image_stats.update({
            name: {stat: sum(v.values()) / len(v)
                   for stat, v in sorted(stats.items())}
            for name, stats in merged.items()})

    def _clock(self, name: str, seconds: float, images: int) -> None:
        """Add ``seconds`` for ``images`` to entry ``name``. The clock is
        read after the metric's ``process``, which has moved the
        predictions to the CPU, so on a GPU the kernels have finished."""
        self._seconds[name] += seconds
        self._images[name] += images

    def seconds_per_image(self) -> Dict[str, float]:
        """Wall time per image of each entry processed, on this process."""
        return {name: self._seconds[name] / self._images[name]
                for name in self._images}

"""Clean and adversarial evaluation in one pass over the test set."""
import hashlib
import json
import os
import os.path as osp
import shutil
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel
from mmengine.runner import TestLoop

from mmdet.registry import LOOPS
from ..attacks.base import unwrap
from ..checks import check_range
from ..evaluation.environment import environment
from ..evaluation.report import RobustnessReport
from ..version import __version__
from .attacked_evaluation import AttackedEvaluation, flat_metrics
from .hooks import CheckpointFitHook, TrainEnvironmentHook, ensure_hook
from .progress import BatchProgress


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


def config_attacks(cfg) -> Dict[str, dict]:
    """The attacks of ``cfg.test_cfg.attacks`` that ``RobustTestLoop``
    runs (entries set to ``None`` left out), without its sweep; ``{}``
    where the config has none."""
    return attack_configs(cfg.get('test_cfg', {}).get('attacks'))


def configured_attacks(cfg, names: Sequence[str], config: str
                       ) -> Dict[str, dict]:
    """``{name: attack config}`` of ``names`` from ``config_attacks(cfg)``;
    a ValueError names those it lacks (``config``: the file, for the
    message)."""
    configured = config_attacks(cfg)
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ValueError(f'attacks {unknown} are not in test_cfg.attacks of '
                         f'{config} ({", ".join(configured)})')
    return {n: configured[n] for n in names}


EMPTY_TEST_SET = ('the test set is empty: check test_dataloader.dataset '
                  '(data_root, ann_file, indices)')


def check_not_tta(model) -> None:
    """``tools/test.py --tta`` wraps the detector in a ``BaseTTAModel``,
    which predicts merged augmented views: an attack needs the detector
    itself (one input, its losses), so name the flag, not the wrapper."""
    if isinstance(unwrap(model), BaseTTAModel):
        raise ValueError(
            'RobustTestLoop does not support test-time augmentation (--tta): '
            'attacks are generated on, and evaluated with, the detector '
            'itself. Run without --tta (or drop tta_model from the model).')


def evaluation_setup(cfg) -> str:
    """Digest of what decides a report entry besides the checkpoint and the
    attack: the model config (its ``test_cfg`` score threshold and NMS, head
    options such as ``one_label_per_prior``, the data preprocessor), the
    test dataset (data root, annotations, pipeline, indices) and the test
    evaluator, as ``cfg`` (an mmengine ``Config``) has them after
    ``--cfg-options``. Any change to them changes the digest."""
    setup = dict(model=cfg.get('model'),
                 dataset=(cfg.get('test_dataloader') or {}).get('dataset'),
                 evaluator=cfg.get('test_evaluator'))
    text = json.dumps(setup, default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_fingerprint(attack_cfg, setup: str, **source) -> dict:
    """What a report entry depends on, JSON-normalised: the attack's config
    (None for clean), the evaluation ``setup`` (:func:`evaluation_setup`),
    the mmdet_robust version that implements the attack, and ``source``
    (``RobustTestLoop``: the checkpoint file and the test set size)."""
    return json_normalised(dict(source, setup=setup,
                                mmdet_robust=__version__, attack=attack_cfg))


def matches(fingerprint: dict, wanted: dict) -> bool:
    """``fingerprint`` (of a report entry) has every item of ``wanted``
    (part or all of an :func:`entry_fingerprint`): the one rule by which
    ``RobustTestLoop`` reuses an entry and the demo finds a stage done."""
    return all(fingerprint.get(k) == v for k, v in wanted.items())


class FinishedEntry(NamedTuple):
    """One entry of an earlier run's report, as read back from its JSON."""
    metrics: dict
    settings: Optional[dict]  # the attack's config (None for clean)
    fingerprint: dict
    seconds_per_image: Optional[float]
    image_stats: Optional[dict]  # {stat: mean over the test images}
    environment: Optional[dict]  # where it was computed


@LOOPS.register_module()
class RobustTestLoop(TestLoop):
    """``TestLoop`` that also evaluates every configured attack.

    For each test batch: the clean predictions, then per attack the
    adversarial batch and its predictions, each fed to its own copy of the
    test evaluator (:class:`AttackedEvaluation`; DDP gathering works as in
    mmengine). Metrics are reported as
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
            each attack; entries of the same attack config share one)
            instead of one pass for all; each entry is saved
            as soon as its pass ends, so an interrupted run loses at most
            the attack in progress. Same compute (the clean forward is not
            repeated); only data loading is.
        resume: reuse the entries of an existing report in the work dir
            whose fingerprint (checkpoint file, test set size, attack
            settings, evaluation setup: model, test data and evaluator
            configs; mmdet_robust version) matches, instead of recomputing
            them; report entries of other attacks on the same checkpoint are
            kept, so attacks can be run one at a time
            (``--cfg-options test_cfg.attacks.dag=None``). A report whose
            entries a run replaces is first copied to
            ``<report_name>.previous.json``.
        progress_interval: log ``robust test [k/n] batches (...), elapsed,
            eta`` at most every this many seconds and after the last batch
            (:class:`BatchProgress`); 0 logs every batch.
    """

    def __init__(self, runner, dataloader, evaluator,
                 attacks: Optional[dict] = None,
                 sweep: Union[bool, dict, None] = None,
                 report_name: str = 'robustness', fp16: bool = False,
                 per_attack_passes: bool = False,
                 resume: bool = True,
                 progress_interval: float = 30.) -> None:
        try:
            super().__init__(runner, dataloader, evaluator, fp16)
        except ValueError as err:  # numpy's, as mmengine serialises no data
            if 'need at least one array' not in str(err):
                raise
            raise ValueError(EMPTY_TEST_SET) from err
        if len(self.dataloader.dataset) == 0:
            raise ValueError(EMPTY_TEST_SET)
        check_not_tta(runner.model)
        ensure_hook(runner, CheckpointFitHook)  # no half-loaded models
        ensure_hook(runner, TrainEnvironmentHook)  # where it was trained
        self.attack_cfgs = attack_configs(attacks, sweep)
        self.entries = AttackedEvaluation(runner, self.evaluator, evaluator,
                                          self.attack_cfgs, 'test_cfg', fp16)
        self.evaluators = self.entries.evaluators
        self.report_name = report_name
        self.per_attack_passes = per_attack_passes
        self.resume = resume
        self.progress_interval = check_range(
            'test_cfg.progress_interval', progress_interval, 0, float('inf'),
            '[)', ' seconds')
        self._reused: Dict[str, FinishedEntry] = {}
        self._kept: Dict[str, FinishedEntry] = {}
        self._environment: Optional[dict] = None

    @property
    def report_path(self) -> str:
        return osp.join(self.runner.work_dir, f'{self.report_name}.json')

    def fingerprints(self) -> Dict[str, dict]:
        """What each entry of the report depends on: the checkpoint file, the
        test set size, the evaluation setup (:func:`evaluation_setup`), the
        attack's settings (JSON-normalised) and the mmdet_robust version
        that implements the attack. A finished entry with the same
        fingerprint is reused instead of recomputed."""
        ckpt = self.runner.cfg.get('load_from')
        stat = os.stat(ckpt) if ckpt and osp.isfile(ckpt) else None
        source = dict(checkpoint=ckpt,
                      checkpoint_size=stat.st_size if stat else None,
                      checkpoint_mtime=stat.st_mtime if stat else None,
                      num_images=len(self.dataloader.dataset))
        setup = evaluation_setup(self.runner.cfg)
        return {name: entry_fingerprint(self.attack_cfgs.get(name), setup,
                                        **source)
                for name in self.evaluators}

    def finished_entries(self) -> Tuple[Dict[str, FinishedEntry],
                                        Dict[str, FinishedEntry]]:
        """Entries an earlier (interrupted or partial) run wrote for the same
        checkpoint, test set and evaluation setup: ``(reusable, others)``,
        where ``reusable``
        are this run's attacks with unchanged settings (not recomputed) and
        ``others`` are further attacks kept in the report, each
        ``{name: FinishedEntry}``, decided on rank 0 and shared. Without a
        checkpoint file nothing ties entries to a model.
        """
        reusable, others = {}, {}
        source = {k: v for k, v in self._prints['clean'].items()
                  if k != 'attack'}
        old = None
        if is_main_process() and osp.isfile(self.report_path):
            with open(self.report_path) as f:
                old = json.load(f)
        if old is not None and self.resume and \
                source['checkpoint_size'] is not None:
            prints = old.get('fingerprints', {})
            for name, metrics in old.get('metrics', {}).items():
                fp = prints.get(name, {})
                if not matches(fp, source):
                    continue  # another checkpoint, test set, setup, version
                entry = FinishedEntry(
                    metrics, old.get('settings', {}).get(name), fp,
                    old.get('seconds_per_image', {}).get(name),
                    old.get('attack_stats', {}).get(name),
                    old.get('environment', {}).get(name))
                if name not in self.evaluators:
                    others[name] = entry
                elif matches(fp, self._prints[name]):  # same attack too
                    reusable[name] = entry
        if old is not None:
            self._back_up_replaced(old, set(reusable) | set(others))
        shared = [(reusable, others)]
        broadcast_object_list(shared)
        return shared[0]

    def _back_up_replaced(self, old: dict, kept: set) -> None:
        """Entries of the earlier report that this run will not keep (another
        checkpoint, test set, setup or version, changed settings,
        ``resume=False``)
        are not lost: that report is copied to
        ``<report_name>.previous.json`` first."""
        replaced = sorted(set(old.get('metrics', {})) - kept)
        if replaced:
            backup = osp.join(self.runner.work_dir,
                              f'{self.report_name}.previous.json')
            shutil.copyfile(self.report_path, backup)
            print_log(f'{self.report_path} has entries this run replaces '
                      f'({", ".join(replaced)}); the earlier report is kept '
                      f'as {backup}', logger='current')

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        self._prints = self.fingerprints()
        self._environment = environment(
            next(unwrap(self.runner.model).parameters()).device)
        self._reused, self._kept = self.finished_entries()
        results = {name: e.metrics for name, e in self._reused.items()}
        if results:
            print_log(f'reusing finished entries of {self.report_path}: '
                      f'{", ".join(results)}', logger='current')
        pending = [name for name in self.evaluators if name not in results]
        passes = self._per_attack_passes(pending) \
            if self.per_attack_passes else [pending] * bool(pending)
        size = len(self.dataloader.dataset)
        progress = BatchProgress(len(passes) * len(self.dataloader),
                                 self.progress_interval)
        for num, names in enumerate(passes, 1):
            what = f'pass {num}/{len(passes)}: {", ".join(names)}' \
                if len(passes) > 1 else f'{len(names)} entries'
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch, names)
                progress.step(what)
            results.update(self.entries.evaluate(size, names))
            if is_main_process():  # each finished pass is saved at once
                self._report(results, log=names is passes[-1])
        per_attack = {name: results[name] for name in self.evaluators}
        if is_main_process() and not passes:
            self._report(per_attack, log=True)
        metrics = flat_metrics(per_attack)
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _per_attack_passes(self, pending: Sequence[str]) -> list:
        """One pass per attack config: entries of the same config (the
        sweep's ``cls_pgd_eps8`` and ``cls_pgd`` ...) share a pass and its
        adversarial batches."""
        passes = {}
        for name in pending:
            first = self.entries.same_attack.get(name, name)
            passes.setdefault(first, []).append(name)
        return list(passes.values())

    def run_iter(self, idx, data_batch: Sequence[dict],
                 names: Optional[Sequence[str]] = None) -> None:
        """Evaluate ``names`` (default: clean and every attack) on a batch."""
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.entries.process(self.runner.model, data_batch, names)
        self.runner.call_hook(
            'after_test_iter', batch_idx=idx, data_batch=data_batch,
            outputs=outputs)

    def seconds_per_image(self) -> Dict[str, Optional[float]]:
        """Wall time per test image of each entry this run computed (or the
        earlier run it reused), on this process."""
        return dict({name: e.seconds_per_image
                     for name, e in self._reused.items()},
                    **self.entries.seconds_per_image())

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
        earlier = dict(self._reused, **kept)  # entries of earlier runs
        stats = {name: e.image_stats for name, e in earlier.items()
                 if e.image_stats is not None}
        stats.update(self.entries.image_stats)
        stats = {name: stats[name] for name in metrics if name in stats}
        environments = {name: earlier[name].environment if name in earlier
                        else self._environment for name in metrics}
        cfg, hub = self.runner.cfg, self.runner.message_hub
        report = RobustnessReport(
            metrics, settings=settings,
            model=dict(config=getattr(cfg, 'filename', None),
                       checkpoint=cfg.get('load_from'),
                       train_environments=hub.get_info(
                           'train_environments'),
                       train_init=hub.get_info('train_init')),
            fingerprints=prints, seconds_per_image=seconds,
            attack_stats=stats, environments=environments)
        paths = report.write(self.runner.work_dir, self.report_name)
        if not log:
            return
        print_log('robustness (mAP@0.5, %):\n' + report.to_markdown() +
                  f'written to {paths["json"]} and {paths["md"]}',
                  logger='current')

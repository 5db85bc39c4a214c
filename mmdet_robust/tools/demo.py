"""The main job on the embedded default: data -> STD and MTD -> report.

    make demo                      # or: python -m mmdet_robust.tools.demo

Stages (each skipped when its output exists and is newer than its inputs,
as ``make`` does, so a re-run resumes and regenerated data retrains; an
evaluation also runs again when its report lacks an attack the eval config
now has):

1. ``data``: the synthetic VOC-format shapes (``make_shapes``);
2. ``train_std`` / ``train_mtd``: the STD config (an adversarial config of
   the family, such as ``*_mtd_voc.py``, trains its STD model on clean
   batches throughout), and the same config and
   schedule with ``AdvTrainingLoop`` + ``TaskDomainAttacker(domain='mtd')``
   from the config's own initialisation with clean batches for the first
   half of the schedule (``--mtd-init warmup``, the default: ``adv_begin``),
   without that warm-up (``scratch``), or started from the STD checkpoint
   (``std``), through MMDetection's own ``tools/train.py``;
3. ``eval_std`` / ``eval_mtd``: ``RobustTestLoop`` (clean, cls-PGD, loc-PGD,
   con-PGD, DAG (one-stage and dense targets), RAP at eps 8, plus the eps
   and steps sweeps) through ``tools/test.py``;
4. ``report``: ``report.md``/``report.json``, ``mAP_vs_eps.png``,
   ``mAP_vs_steps.png`` and ``detections.png`` in the work dir.

``--jobs 2`` runs the STD and MTD stages side by side: two chains, train
-> evaluate, one per model (with ``--mtd-init std`` MTD's chain starts when
STD's training is done). Each tool keeps torch's default thread count, so
the results are the same to the bit as with ``--jobs 1``, the default, which
runs one stage at a time (and so times each evaluation's cost per image
alone).

Real models: ``DEMO_CONFIG=configs/ssd300_vgg16_std_voc.py
DEMO_EVAL_CONFIG=configs/robust_eval/ssd300_vgg16_voc.py
DEMO_DATA_ROOT=data/VOCdevkit/ make demo`` (or the matching flags).
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

import mmdet
from mmengine.config import Config, DictAction

from mmdet_robust.config import load_config
from mmdet_robust.datasets.make_shapes import make_shapes, stamp_path
from mmdet_robust.engine.robust_test_loop import (attack_configs,
                                                  entry_fingerprint,
                                                  evaluation_setup, matches)
from mmdet_robust.tools.cli import positive_int

MMDET_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MTD_OPTIONS = ['train_cfg.type=AdvTrainingLoop',
               'train_cfg.attacker.type=TaskDomainAttacker',
               'train_cfg.attacker.domain=mtd', 'train_cfg.attacker.eps=8.0']
# an adversarial config (CLS, LOC, CON or MTD) given as --config: its STD
# model keeps the loop but trains on clean batches throughout
STD_FROM_ADVERSARIAL = ['train_cfg.attacker=None', 'train_cfg.adv_begin=0']
SHAPES_ROOT = 'data/shapes'
# where MTD training starts, as the report states it
MTD_INITS = dict(
    warmup="the config's own initialisation, on clean batches for the first "
    'half of the same schedule (`adv_begin`)',
    scratch="the config's own initialisation",
    std='the STD checkpoint (same schedule)')


class StageError(RuntimeError):
    """A demo stage failed; the message names the stage and the cause."""


_PRINT_LOCK = threading.Lock()


def _say(text: str) -> None:
    """Print whole lines, also from stages running side by side."""
    with _PRINT_LOCK:
        sys.stdout.write(text + '\n')
        sys.stdout.flush()


def _tool_env(jobs: int) -> Dict[str, str]:
    """The tools' environment. Side by side, two tools each run torch's
    default number of threads (which keeps their results the same to the
    bit) on cores they share: OpenMP's spinning waits then made two
    2-epoch trainings take 2.2x as long as one after the other on a 2-core
    machine, passive waits 0.6x."""
    env = dict(os.environ)
    if jobs > 1:
        env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    return env


# mmengine's console format: "11/29 13:58:40 - mmengine - INFO - message"
_MMENGINE_LINE = re.compile(
    r'^\d\d/\d\d (\d\d:\d\d:\d\d) - mmengine - ([A-Z]+) - ?')


def console_line(line: str, width: int = 160) -> str:
    """A tool's log line as the demo's console shows it: mmengine's date,
    logger name and INFO level dropped (``13:58:40 Epoch(train) [23][20/32]
    lr: ...``), cut to ``width`` characters with ``...``; a line that
    reports an error is kept whole; '' for a record whose message starts
    on the next line (the VOC metric's per-class tables). The stage's log
    file keeps every line as the tool wrote it."""
    line = line.rstrip()
    found = _MMENGINE_LINE.match(line)
    if found:
        clock, level = found.groups()
        message = line[found.end():]
        if not message:
            return ''
        prefix = clock if level == 'INFO' else f'{clock} {level}'
        line = f'{prefix} {message}'
    if len(line) > width and 'Error' not in line:
        line = line[:width - 3] + '...'
    return line


def _data_options(data_root: Optional[str]) -> List[str]:
    if not data_root:
        return []
    return [f'{loader}.dataset.data_root={data_root}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]


def _run_tool(tool: str, args: Sequence[str], options: Sequence[str],
              log_path: str, stage: str,
              env: Optional[Dict[str, str]] = None) -> None:
    """Run an MMDetection tool; its log streams to a file and, each line
    tagged with ``stage``, to the console."""
    cmd = [sys.executable, osp.join(MMDET_TOOLS, tool), *args]
    if options:
        cmd += ['--cfg-options', *options]
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                cwd=REPO, env=env)
        for line in proc.stdout:
            log.write(line)
            shown = console_line(line) \
                if ' - mmengine - ' in line or 'Error' in line else ''
            if shown:
                _say(f'    [{stage}] {shown}')
        if proc.wait():
            raise StageError(f'{tool} exited with {proc.returncode}; see '
                             f'{log_path}')


# mmengine finds an ``mmdet::`` base config after reloading pkg_resources
# (``is_installed``): a config loaded in another thread meanwhile fails
# with "TypeError: ('Expected str, Requirement, or Distribution', mmdet
# 3.3.0 ...)", which stopped a stage with two side by side
_CONFIG_LOCK = threading.Lock()


def _load_config(config: str, options: Sequence[str]) -> Config:
    """``config`` with the ``--cfg-options`` applied, as MMDetection's tools
    will see it (one config at a time in this process)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={})
    with _CONFIG_LOCK:
        cfg = load_config(osp.join(REPO, config))
    cfg.merge_from_dict(parser.parse_args(
        ['--cfg-options', *options] if options else []).cfg_options)
    return cfg


def _schedule_length(config: str, options: Sequence[str]) -> int:
    """``max_epochs`` (or ``max_iters``) of the training schedule."""
    train_cfg = _load_config(config, options).train_cfg
    return train_cfg.get('max_epochs') or train_cfg.max_iters


def _adversarial(config: str, options: Sequence[str]) -> bool:
    """``config`` trains on adversarial examples (its loop has an
    attacker)."""
    return _load_config(config, options).train_cfg.get('attacker') is not None


def _report_covers(report: str, config: str, options: Sequence[str]) -> bool:
    """The robustness report has an entry for every attack that ``config``
    (with ``options``) configures, with the same settings, under the same
    evaluation setup (model, test data, evaluator), computed by this
    mmdet_robust version: an attack added to or changed in the eval config,
    another model or data setting, or a new version makes the stage run
    again (and ``RobustTestLoop`` then computes only the entries it
    lacks)."""
    if not osp.isfile(report):
        return False
    try:
        cfg = _load_config(config, options)
    except Exception:  # noqa: BLE001  the stage itself reports why
        return False
    test_cfg, setup = cfg.test_cfg, evaluation_setup(cfg)
    wanted = attack_configs(test_cfg.get('attacks'), test_cfg.get('sweep'))
    with open(report) as f:
        prints = json.load(f).get('fingerprints', {})
    return all(matches(prints.get(name, {}), entry_fingerprint(attack, setup))
               for name, attack in wanted.items())


def _fresh(output: Optional[str], inputs: Sequence[Optional[str]]) -> bool:
    """``output`` exists and is newer than every input that exists."""
    if output is None or not osp.isfile(output):
        return False
    return all(osp.getmtime(output) > osp.getmtime(i) for i in inputs
               if i is not None and osp.isfile(i))


def _checkpoint(work_dir: str) -> Optional[str]:
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        path = open(pointer).read().strip()
        if osp.isfile(path):
            return path
    return None


class Demo:
    """Runs the stages and keeps their timings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work_dir = osp.abspath(args.work_dir)
        os.makedirs(self.work_dir, exist_ok=True)
        # wall time of each stage when it last ran (kept across re-runs)
        self.timings_path = osp.join(self.work_dir, 'timings.json')
        self.timings: Dict[str, float] = json.load(open(
            self.timings_path)) if osp.isfile(self.timings_path) else {}
        # the stages each one shared the machine with when it last ran
        self.beside_path = osp.join(self.work_dir, 'beside.json')
        self.beside: Dict[str, List[str]] = json.load(open(
            self.beside_path)) if osp.isfile(self.beside_path) else {}
        self._running: Dict[str, set] = {}
        self._lock = threading.Lock()
        self.tool_env = _tool_env(args.jobs)
        # what the checkpoints were trained on: the synthetic tree's stamp
        self.data_stamp = None if args.data_root else stamp_path(
            osp.join(REPO, SHAPES_ROOT))

    def stage(self, name: str, fn: Callable, done: Callable[[], bool]):
        if done():
            _say(f'[demo] {name}: done before, reused')
            return
        _say(f'[demo] {name} ...')
        with self._lock:
            for others in self._running.values():
                others.add(name)
            self._running[name] = set(self._running)
        start = time.time()
        try:
            fn()
        except StageError as err:
            raise SystemExit(f'[demo] stage {name!r} failed: {err}')
        except Exception as err:  # any other cause: name the stage too
            raise SystemExit(f'[demo] stage {name!r} failed: '
                             f'{type(err).__name__}: {err}') from err
        finally:
            with self._lock:
                beside = self._running.pop(name)
        with self._lock:
            self.timings[name] = round(time.time() - start, 1)
            self.beside[name] = sorted(beside)
            with open(self.timings_path, 'w') as f:
                json.dump(self.timings, f)
            with open(self.beside_path, 'w') as f:
                json.dump(self.beside, f)
        _say(f'[demo] {name}: {self.timings[name]:.0f} s')

    def run_chains(self, chains: Sequence[Sequence[Callable[[], None]]]):
        """Run each chain's stages in order, up to ``--jobs`` chains at
        once. A failing stage stops its own chain; the other chains finish
        (their checkpoints and reports are kept for the next run), then the
        demo stops, naming every stage that failed."""
        def run(chain) -> Optional[str]:
            try:
                for step in chain:
                    step()
            except SystemExit as err:
                if len(chains) > 1:
                    _say(f'{err}; the other stages go on')
                return str(err)
            return None

        with ThreadPoolExecutor(self.args.jobs) as pool:
            failures = [f for f in pool.map(run, chains) if f]
        if failures:
            raise SystemExit('\n'.join(failures))

    def train(self, model: str) -> None:
        args = self.args
        work_dir = osp.join(self.work_dir, model)
        options = _data_options(args.data_root) + list(args.train_options)
        inputs = [self.data_stamp]
        if model == 'mtd':
            options += MTD_OPTIONS
            if args.mtd_init == 'std':
                # the same schedule, from the STD weights
                std = _checkpoint(osp.join(self.work_dir, 'std'))
                options.append(f'load_from={std}')
                inputs.append(std)

        def run():
            extra = []
            if model == 'mtd' and args.mtd_init == 'warmup':
                half = _schedule_length(args.config, options) // 2
                extra = [f'train_cfg.adv_begin={half}']
            if model == 'std' and _adversarial(args.config, options):
                extra = STD_FROM_ADVERSARIAL
            _run_tool('train.py', [args.config, '--work-dir', work_dir],
                      options + extra,
                      osp.join(self.work_dir, f'train_{model}.log'),
                      f'train_{model}', self.tool_env)

        self.stage(f'train_{model}', run,
                   lambda: _fresh(_checkpoint(work_dir), inputs))

    def evaluate(self, model: str) -> None:
        args = self.args
        work_dir = osp.join(self.work_dir, model)
        report = osp.join(work_dir, 'robustness.json')
        options = _data_options(args.data_root) + [
            f'test_dataloader.dataset.indices={args.eval_images}',
            'test_cfg.sweep=True'] + list(args.eval_options)

        def run():
            _run_tool('test.py', [
                args.eval_config, _checkpoint(work_dir), '--work-dir',
                work_dir
            ], options, osp.join(self.work_dir, f'eval_{model}.log'),
                f'eval_{model}', self.tool_env)

        def done():
            ckpt = _checkpoint(work_dir)
            return ckpt is not None and _fresh(report, [ckpt]) and \
                _report_covers(report, args.eval_config, options)

        self.stage(f'eval_{model}', run, done)

    def run(self) -> None:
        args = self.args
        if not args.data_root:
            self.stage('data',
                       lambda: make_shapes(osp.join(REPO, SHAPES_ROOT)),
                       lambda: False)

        def chain(model: str, train: bool = True) -> list:
            steps = [lambda: self.train(model)] if train else []
            return steps + [lambda: self.evaluate(model)]

        if args.mtd_init == 'std':  # MTD's chain needs STD's checkpoint
            self.train('std')
            self.run_chains([chain('std', train=False), chain('mtd')])
        else:
            self.run_chains([chain('std'), chain('mtd')])
        from mmdet_robust.tools.demo_report import write_demo_report
        self.stage('report', lambda: write_demo_report(self),
                   lambda: False)
        print(open(osp.join(self.work_dir, 'report.md')).read()
              .split('## Sweeps')[0])
        print(f'[demo] report: {osp.join(self.work_dir, "report.md")}')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Flags, with defaults from the ``DEMO_*`` environment variables
    (checked like the flags, before any stage runs)."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=env(
        'DEMO_CONFIG', 'configs/tiny_ssd_std_shapes.py'),
        help='STD training config (or an adversarial one of the family, '
        'whose STD model then trains on clean batches); MTD is derived '
        'from it')
    parser.add_argument('--eval-config', default=env(
        'DEMO_EVAL_CONFIG', 'configs/robust_eval/tiny_ssd_shapes.py'))
    parser.add_argument('--data-root', default=env('DEMO_DATA_ROOT'),
                        help='VOCdevkit root of real data (default: '
                        'generate the synthetic shapes)')
    parser.add_argument('--work-dir', default=env('DEMO_WORK_DIR',
                                                  'work_dirs/demo'))
    parser.add_argument('--mtd-init', choices=list(MTD_INITS), default=env(
        'DEMO_MTD_INIT', 'warmup'), help='train MTD from the config\'s own '
        'initialisation with clean batches for the first half of the '
        'schedule (warmup, the default), from it without warm-up (scratch, '
        'the paper\'s protocol), or from the STD checkpoint (std)')
    parser.add_argument('--eval-images', type=positive_int, default=env(
        'DEMO_EVAL_IMAGES', '50'), help='evaluate on the first N test images '
        '(DEMO_EVAL_IMAGES)')
    parser.add_argument('--jobs', type=positive_int, default=env(
        'DEMO_JOBS', '1'), help='how many stages run side by side: one at '
        'a time with 1, the default; the STD and MTD chains (train, '
        'evaluate) at once with 2, to the same bits (DEMO_JOBS)')
    parser.add_argument('--train-options', nargs='*', default=[],
                        help='extra --cfg-options for training')
    parser.add_argument('--eval-options', nargs='*', default=[],
                        help='extra --cfg-options for evaluation')
    args = parser.parse_args(argv)
    if args.mtd_init not in MTD_INITS:  # argparse leaves defaults unchecked
        parser.error(f'DEMO_MTD_INIT={args.mtd_init!r}: choose one of '
                     f'{", ".join(MTD_INITS)}')
    for flag, path in (('--config', args.config),
                       ('--eval-config', args.eval_config)):
        if not osp.isfile(osp.join(REPO, path)):  # tools run in REPO
            parser.error(f'{flag} {path!r} is not a file')
    if args.data_root and not osp.isdir(args.data_root):
        parser.error(f'--data-root {args.data_root!r} is not a directory')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    Demo(parse_args(argv)).run()


if __name__ == '__main__':
    main()

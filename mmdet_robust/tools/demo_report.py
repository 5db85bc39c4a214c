"""The demo's report: tables, sweep plots and a detections figure."""
import json
import os.path as osp
import time
from typing import Dict

from mmdet_robust.evaluation.environment import (by_environment,
                                                 describe_training)
from mmdet_robust.evaluation.report import atomic_write
from mmdet_robust.tools.demo import MTD_INITS
from mmdet_robust.tools.draw_detections import (DEFAULT_ATTACKS,
                                                detections_figure)
from mmdet_robust.tools.plot_sweep import plot_sweeps, sweep_curves

MODELS_SHOWN = ('std', 'mtd')


def figure_columns(configured) -> tuple:
    """The paper's figure columns (clean, cls-PGD, DAG, RAP) that the eval
    config has: a head DAG and RAP cannot read (YOLOX) gets clean and
    cls-PGD."""
    return tuple(a for a in DEFAULT_ATTACKS
                 if a == 'clean' or a in configured)


def _table(rows: Dict[str, Dict[str, float]], columns,
           cell: str = '{:.1f}', scale: float = 100.) -> str:
    lines = ['| model | ' + ' | '.join(columns) + ' |',
             '|---' * (len(columns) + 1) + '|']
    for model, values in rows.items():
        cells = [cell.format(scale * values[c])
                 if values.get(c) is not None else '-' for c in columns]
        lines.append(f'| {model.upper()} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def _sweep_tables(reports: Dict[str, dict]) -> str:
    out = []
    curves = {m: sweep_curves(r['mAP']) for m, r in reports.items()}
    for axis, label in (('eps', 'eps (20 steps)'), ('steps',
                                                    'PGD steps (eps 8)')):
        for task in ('cls', 'loc'):
            points = {m: dict(c.get(axis, {}).get(task, []))
                      for m, c in curves.items()}
            xs = sorted({x for p in points.values() for x in p})
            if not xs:
                continue
            out.append(f'\n**{task}-PGD, mAP@0.5 (%) vs {label}**\n')
            out.append('| model | ' + ' | '.join(f'{x:g}' for x in xs) +
                       ' |')
            out.append('|---' * (len(xs) + 1) + '|')
            for model, p in points.items():
                out.append(f'| {model.upper()} | ' + ' | '.join(
                    f'{100 * p[x]:.1f}' if x in p else '-' for x in xs) +
                           ' |')
    return '\n'.join(out) + '\n'


def _attack_statistics(stats: Dict[str, Dict[str, dict]], columns) -> str:
    """Mean perturbation size per model x attack, and DAG's iterations."""
    attacks = [a for a in columns if a != 'clean']
    linf = {m: {a: s.get(a, {}).get('linf') for a in attacks}
            for m, s in stats.items()}
    out = ['\n## Attack statistics (means over the test images)\n',
           'Perturbation size, max |x_adv - x| in pixels of 255:\n',
           _table(linf, attacks, '{:.2f}', 1.)]
    dag = [f'- {name}, {model.upper()}: {s[name]["dag_iters"]:.1f} '
           f'iterations per image, {100 * s[name]["dag_at_cap"]:.0f}% of '
           'the images at max_iters'
           for name in ('dag', 'dag_dense') for model, s in stats.items()
           if 'dag_iters' in s.get(name, {})]
    if dag:
        out += ['DAG stops on an image once none of its targets is '
                'correct, else at max_iters:\n'] + dag
    return '\n'.join(out) + '\n'


def _environment_line(environments: Dict[str, dict]) -> str:
    """Where the evaluations ran (the numbers move with the CPU and the
    package versions)."""
    where = by_environment(environments)
    if not where:
        return ''
    return 'Evaluated on ' + '; '.join(sorted(where)) + '.\n'


def _training_lines(trained: Dict[str, dict]) -> str:
    """Where each model was trained (as its checkpoint records it)."""
    return ''.join(
        f'{model.upper()}: {line}\n' for model, record in trained.items()
        for line in describe_training(record))


def _draw_detections(demo, reports: Dict[str, dict]) -> str:
    """``detections.png`` of the finished models; its time in
    ``demo.timings``. Returns its path."""
    checkpoints = {}
    for m in MODELS_SHOWN:
        pointer = osp.join(demo.work_dir, m, 'last_checkpoint')
        checkpoints[m.upper()] = open(pointer).read().strip()
    figure = osp.join(demo.work_dir, 'detections.png')
    start = time.time()
    detections_figure(demo.args.eval_config, checkpoints, figure,
                      figure_columns(reports['std']['settings']),
                      data_root=demo.args.data_root)
    demo.timings['detections_figure'] = round(time.time() - start, 1)
    return figure


def _summary(demo, reports: Dict[str, dict], files: dict) -> dict:
    """``report.json``: the main table (sweeps apart), per model."""
    args = demo.args
    main = {m: {a: r['mAP'][a] for a in r['mAP'] if '_pgd_' not in a}
            for m, r in reports.items()}
    settings = dict(config=args.config, eval_config=args.eval_config,
                    mtd_init=args.mtd_init,
                    data_root=args.data_root or 'data/shapes (synthetic)',
                    attacks=reports['std']['settings'],
                    metric=reports['std']['metric'])
    return dict(
        settings=settings, mAP=main,
        sweeps={m: sweep_curves(r['mAP']) for m, r in reports.items()},
        timings_s=demo.timings,
        beside={k: demo.beside.get(k, []) for k in demo.timings},
        seconds_per_image={
            m: {a: r.get('seconds_per_image', {}).get(a) for a in main[m]}
            for m, r in reports.items()},
        attack_stats={
            m: {a: v for a, v in r.get('attack_stats', {}).items()
                if a in main[m]}
            for m, r in reports.items()},
        # where each model's clean entry was evaluated
        environment={m: r.get('environment', {}).get('clean')
                     for m, r in reports.items()},
        trained={m: {key: r.get('model', {}).get(key)
                     for key in ('train_environments', 'train_init')}
                 for m, r in reports.items()},
        files=files)


def _stage_times(summary: dict) -> str:
    lines = []
    for stage, seconds in summary['timings_s'].items():
        beside = summary['beside'].get(stage)
        lines.append(f'- {stage}: {seconds}' + (
            f' (beside {", ".join(beside)})' if beside else ''))
    return '\n'.join(lines) + '\n'


def _markdown(summary: dict, reports: Dict[str, dict]) -> str:
    """``report.md``: the tables of ``summary``, the plots and figure."""
    settings, main = summary['settings'], summary['mAP']
    columns = [a for a in ('clean', 'cls_pgd', 'loc_pgd', 'con_pgd', 'dag',
                           'dag_dense', 'rap')
               if any(a in v for v in main.values())]
    md = ['# mmdet_robust demo: STD vs MTD\n',
          f'Model config `{settings["config"]}`, evaluation '
          f'`{settings["eval_config"]}`, data `{settings["data_root"]}`; '
          f'MTD starts from {MTD_INITS[settings["mtd_init"]]}. mAP@0.5 (%), '
          f'{settings["metric"]}; every attack at eps = 8 (pixels of 255).\n',
          _environment_line(summary['environment']),
          _training_lines(summary['trained']),
          _table(main, columns),
          _attack_statistics(summary['attack_stats'], columns),
          '## Sweeps\n', _sweep_tables(reports),
          '\n![mAP vs eps](mAP_vs_eps.png)\n![mAP vs steps](mAP_vs_steps.png)'
          '\n\n![detections](detections.png)\n',
          '\n## Attack settings\n', '```json\n' + json.dumps(
              settings['attacks'], indent=1) + '\n```\n',
          '\n## Wall time per stage (s)\n',
          'When each stage last ran, and the stages that ran beside it '
          '(sharing the CPU); a re-run that reused finished work '
          '(checkpoints, report entries) shows only its own time.\n',
          _stage_times(summary), '\n## Evaluation cost (ms per test image)\n',
          'Attack, prediction and the metric\'s processing, on one '
          'process; an evaluation that ran beside other stages (above) '
          'shared the CPU with them.\n',
          _table(summary['seconds_per_image'], columns, '{:.0f}', 1000.)]
    return '\n'.join(md)


def write_demo_report(demo) -> None:
    """``report.json``, ``report.md``, the sweep plots and
    ``detections.png`` in ``demo.work_dir``, from the evaluations'
    ``robustness.json``."""
    work_dir = demo.work_dir
    reports = {m: json.load(open(osp.join(work_dir, m, 'robustness.json')))
               for m in MODELS_SHOWN}
    plots = plot_sweeps([reports[m] for m in MODELS_SHOWN],
                        [m.upper() for m in MODELS_SHOWN], work_dir)
    figure = _draw_detections(demo, reports)
    summary = _summary(demo, reports, dict(plots=plots, detections=figure))
    atomic_write(osp.join(work_dir, 'report.json'),
                 json.dumps(summary, indent=2, default=str))
    atomic_write(osp.join(work_dir, 'report.md'), _markdown(summary, reports))

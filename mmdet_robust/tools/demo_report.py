"""The demo's report: tables, sweep plots and a detections figure."""
import copy
import json
import os.path as osp
import time
from typing import Dict

import numpy as np
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmdet.registry import DATASETS, MODELS
from mmdet.visualization import DetLocalVisualizer
from mmdet_robust.attacks.base import gt_in_input_coords
from mmdet_robust.checkpoint import safe_torch_load
from mmdet_robust.engine.attacked_evaluation import predict_preprocessed
from mmdet_robust.evaluation.report import atomic_write
from mmdet_robust.tools.demo import MTD_INITS
from mmdet_robust.tools.plot_sweep import plot_sweeps, sweep_curves

MODELS_SHOWN = ('std', 'mtd')
FIGURE_ATTACKS = ('clean', 'cls_pgd', 'dag', 'rap')


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


def detections_figure(eval_config: str, checkpoints: Dict[str, str],
                      out_path: str, image_index: int = 0,
                      data_root=None) -> None:
    """Rows: models; columns: clean and each attack; predicted boxes drawn
    with MMDetection's ``DetLocalVisualizer`` (as in the paper's Fig. 1/8).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    init_default_scope('mmdet')
    cfg = Config.fromfile(eval_config)
    if data_root:
        cfg.test_dataloader.dataset.data_root = data_root
    dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    raw = pseudo_collate([dataset[image_index]])
    attacks = {name: MODELS.build(copy.deepcopy(cfg.test_cfg.attacks[name]))
               for name in FIGURE_ATTACKS[1:]}
    visualizer = DetLocalVisualizer(name='demo_figure')
    visualizer.dataset_meta = dataset.metainfo
    fig, axes = plt.subplots(len(checkpoints), len(FIGURE_ATTACKS),
                             figsize=(3 * len(FIGURE_ATTACKS),
                                      3.2 * len(checkpoints)), squeeze=False)
    for row, (model_name, path) in enumerate(checkpoints.items()):
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.load_state_dict(safe_torch_load(path)['state_dict'])
        model.eval()
        data = model.data_preprocessor(copy.deepcopy(raw), False)
        to_attack = dict(data, data_samples=gt_in_input_coords(
            data['data_samples']))
        for col, attack_name in enumerate(FIGURE_ATTACKS):
            inputs = data['inputs'] if attack_name == 'clean' else \
                attacks[attack_name](model, to_attack)['inputs']
            result = predict_preprocessed(model, inputs,
                                          data['data_samples'])
            # show the network input the attack produced, in pixels
            std = model.data_preprocessor.std.view(-1, 1, 1)
            mean = model.data_preprocessor.mean.view(-1, 1, 1)
            shown = (inputs[0] * std + mean).clamp(0, 255).permute(1, 2, 0)
            shown = shown.byte().numpy()
            scale = result[0].scale_factor
            result[0].pred_instances.bboxes *= result[0].pred_instances.\
                bboxes.new_tensor([scale[0], scale[1], scale[0], scale[1]])
            visualizer.add_datasample(
                'img', np.ascontiguousarray(shown), result[0],
                draw_gt=False, pred_score_thr=0.3, show=False)
            ax = axes[row][col]
            ax.imshow(visualizer.get_image())
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(attack_name.replace('_', '-'))
            if col == 0:
                ax.set_ylabel(model_name.upper(), fontsize=13)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def write_demo_report(demo) -> None:
    work_dir, args = demo.work_dir, demo.args
    reports = {m: json.load(open(osp.join(work_dir, m, 'robustness.json')))
               for m in MODELS_SHOWN}
    main = {m: {a: r['mAP'][a] for a in r['mAP'] if '_pgd_' not in a}
            for m, r in reports.items()}
    seconds = {m: {a: r.get('seconds_per_image', {}).get(a) for a in main[m]}
               for m, r in reports.items()}
    columns = [a for a in ('clean', 'cls_pgd', 'loc_pgd', 'con_pgd', 'dag',
                           'dag_dense', 'rap')
               if any(a in v for v in main.values())]
    plots = plot_sweeps([reports[m] for m in MODELS_SHOWN],
                        [m.upper() for m in MODELS_SHOWN], work_dir)
    checkpoints = {}
    for m in MODELS_SHOWN:
        pointer = osp.join(work_dir, m, 'last_checkpoint')
        checkpoints[m] = open(pointer).read().strip()
    figure = osp.join(work_dir, 'detections.png')
    start = time.time()
    detections_figure(args.eval_config, checkpoints, figure,
                      data_root=args.data_root)
    demo.timings['detections_figure'] = round(time.time() - start, 1)
    settings = dict(config=args.config, eval_config=args.eval_config,
                    mtd_init=args.mtd_init,
                    data_root=args.data_root or 'data/shapes (synthetic)',
                    attacks=reports['std']['settings'],
                    metric=reports['std']['metric'])
    summary = dict(settings=settings, mAP=main,
                   sweeps={m: sweep_curves(r['mAP'])
                           for m, r in reports.items()},
                   timings_s=demo.timings, seconds_per_image=seconds,
                   files=dict(plots=plots, detections=figure))
    atomic_write(osp.join(work_dir, 'report.json'),
                 json.dumps(summary, indent=2, default=str))
    md = ['# mmdet_robust demo: STD vs MTD\n',
          f'Model config `{args.config}`, evaluation `{args.eval_config}`, '
          f'data `{settings["data_root"]}`; MTD starts from '
          f'{MTD_INITS[args.mtd_init]}. mAP@0.5 (%), '
          f'{settings["metric"]}; every attack at eps = 8 (pixels of 255).\n',
          _table(main, columns), '## Sweeps\n', _sweep_tables(reports),
          '\n![mAP vs eps](mAP_vs_eps.png)\n![mAP vs steps](mAP_vs_steps.png)'
          '\n\n![detections](detections.png)\n',
          '\n## Attack settings\n', '```json\n' + json.dumps(
              settings['attacks'], indent=1) + '\n```\n',
          '\n## Wall time per stage (s)\n',
          'When each stage last ran; a re-run that reused finished work '
          '(checkpoints, report entries) shows only its own time.\n',
          '\n'.join(f'- {k}: {v}' for k, v in demo.timings.items()) + '\n',
          '\n## Evaluation cost (ms per test image)\n',
          'Attack, prediction and the metric\'s processing, on one '
          'process.\n', _table(seconds, columns, '{:.0f}', 1000.)]
    atomic_write(osp.join(work_dir, 'report.md'), '\n'.join(md))

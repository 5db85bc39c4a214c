"""mAP vs eps and mAP vs PGD steps (paper Figures 5-6), one line per model.

    python -m mmdet_robust.tools.plot_sweep \\
        work_dirs/std/robustness.json work_dirs/mtd/robustness.json \\
        --labels STD MTD --out-dir work_dirs/plots

Reads the reports that ``RobustTestLoop`` writes when its ``sweep`` is set
(attacks named ``{task}_pgd_eps{e}`` and ``{task}_pgd_steps{k}``).
"""
import argparse
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

SWEEP_NAME = re.compile(r'^(?P<task>\w+?)_pgd_(?P<axis>eps|steps)'
                        r'(?P<value>[\d.]+)$')
AXES = dict(eps=('eps (pixels of 255), 20-step PGD', 'mAP_vs_eps.png'),
            steps=('PGD steps, eps = 8', 'mAP_vs_steps.png'))


def sweep_curves(mAP: Dict[str, float]) -> Dict[str, Dict[str, list]]:
    """``{axis: {task: [(value, mAP), ...]}}`` from a report's ``mAP``."""
    curves: Dict[str, Dict[str, list]] = {}
    for name, value in mAP.items():
        match = SWEEP_NAME.match(name)
        if match and value is not None:  # None: the entry has no mAP
            curves.setdefault(match['axis'], {}).setdefault(
                match['task'], []).append((float(match['value']), value))
    for axis in curves.values():
        for points in axis.values():
            points.sort()
    return curves


def plot_sweeps(reports: Sequence[dict], labels: Sequence[str],
                out_dir: str) -> List[str]:
    """Write one PNG per sweep axis; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    curves = [sweep_curves(r['mAP']) for r in reports]
    paths = []
    for axis, (xlabel, filename) in AXES.items():
        tasks = sorted({t for c in curves for t in c.get(axis, {})})
        if not tasks:
            continue
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks),
                                                         3.6), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            for curve, label in zip(curves, labels):
                points = curve.get(axis, {}).get(task)
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, [100 * y for y in ys], marker='o',
                            label=label)
            ax.set_title(f'loss_{task}-based PGD')
            ax.set_xlabel(xlabel)
            ax.set_ylabel('mAP@0.5 (%)')
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = osp.join(out_dir, filename)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('reports', nargs='+', help='robustness.json files')
    parser.add_argument('--labels', nargs='+', help='one label per report')
    parser.add_argument('--out-dir', default='.')
    args = parser.parse_args(argv)
    labels = args.labels or [osp.basename(osp.dirname(osp.abspath(p)))
                             for p in args.reports]
    if len(labels) != len(args.reports):
        parser.error('give one label per report')
    missing = [p for p in args.reports if not osp.isfile(p)]
    if missing:
        parser.error(f'no such report: {", ".join(missing)}')
    reports = [json.load(open(p)) for p in args.reports]
    paths = plot_sweeps(reports, labels, args.out_dir)
    if not paths:
        parser.error('no sweep attacks ({task}_pgd_eps{e} / '
                     '{task}_pgd_steps{k}) in the reports: evaluate with '
                     'test_cfg.sweep set')
    print('\n'.join(paths))


if __name__ == '__main__':
    main()

"""Robustness report: attack x mAP table as JSON and Markdown."""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, Optional

from .environment import by_environment, describe_training

# Preferred headline metric per evaluator (mAP@0.5 first).
HEADLINE_KEYS = ('pascal_voc/mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP')


def headline_key(metrics: Dict[str, float]) -> Optional[str]:
    """The mAP@0.5-like key of one evaluator's metrics, or None."""
    for key in HEADLINE_KEYS:
        if key in metrics:
            return key
    for key in metrics:
        if 'mAP' in key or 'AP50' in key:
            return key
    return None


def atomic_write(path: str, text: str) -> None:
    """Write via a temporary file and rename: readers never see half."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates it private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class RobustnessReport:
    """Metrics of one model under clean inputs and each attack.

    ``metrics``: ``{attack name: {metric key: value}}`` (e.g. ``{'clean':
    {'pascal_voc/mAP': 0.89}, 'cls_pgd': {...}}``); ``settings``: each
    attack's config, reported next to its number; ``seconds_per_image``:
    each entry's wall time per test image (``None`` where unknown);
    ``attack_stats``: ``{attack: {stat: mean over the test images}}`` of
    the attacks' per-image statistics (``linf``: the perturbation's max
    norm in pixels; DAG's ``dag_iters`` and ``dag_at_cap``);
    ``environments``: ``{attack: environment}``, where each entry was
    computed (:func:`~mmdet_robust.evaluation.environment.environment`);
    ``model``: ``dict(config=..., checkpoint=..., train_environments=...,
    train_init=...)``, the last two where the checkpoint was trained and
    what it started from (``TrainEnvironmentHook``'s record, None when the
    checkpoint has none).
    """

    def __init__(
            self, metrics: Dict[str, Dict[str, float]],
            settings: Optional[Dict[str, dict]] = None,
            model: Optional[dict] = None,
            fingerprints: Optional[Dict[str, dict]] = None,
            seconds_per_image: Optional[Dict[str, Optional[float]]] = None,
            attack_stats: Optional[Dict[str, Dict[str, float]]] = None,
            environments: Optional[Dict[str, dict]] = None
    ) -> None:
        self.metrics = metrics
        self.environments = environments or {}
        self.seconds_per_image = seconds_per_image or {}
        self.attack_stats = attack_stats or {}
        self.fingerprints = fingerprints or {}
        self.settings = settings or {}
        self.model = model or {}
        # from the first entry that has one: an evaluator may report
        # nothing for an entry (the report is written all the same)
        self.key = next((key for key in map(headline_key, metrics.values())
                         if key is not None), None)

    def headline(self) -> Dict[str, Optional[float]]:
        """``{attack: mAP}`` in the order the attacks ran (None where an
        entry lacks the headline metric)."""
        return {name: float(m[self.key]) if self.key in m else None
                for name, m in self.metrics.items()}

    def to_dict(self) -> dict:
        return dict(model=self.model, metric=self.key,
                    mAP=self.headline(), metrics=self.metrics,
                    settings=self.settings, fingerprints=self.fingerprints,
                    seconds_per_image=self.seconds_per_image,
                    attack_stats=self.attack_stats,
                    environment=self.environments)

    def to_markdown(self) -> str:
        clean = self.headline().get('clean')
        lines = [f'| attack | {self.key} | % of clean | s / image | '
                 'mean L_inf (px) |', '|---|---|---|---|---|']
        notes = []
        for name, value in self.headline().items():
            ratio = f'{100 * value / clean:.1f}' \
                if clean and value is not None else '-'
            value = '-' if value is None else f'{100 * value:.1f}'
            seconds = self.seconds_per_image.get(name)
            seconds = '-' if seconds is None else f'{seconds:.3g}'
            stats = dict(self.attack_stats.get(name) or {})
            linf = stats.pop('linf', None)
            linf = '-' if linf is None else f'{linf:.2f}'
            lines.append(
                f'| {name} | {value} | {ratio} | {seconds} | {linf} |')
            if stats:
                notes.append(f'- {name}: ' + ', '.join(
                    f'{stat} {mean:.3g}' for stat, mean in stats.items()))
        if notes:
            lines += ['', 'Further attack statistics (means over the test '
                      'images):', ''] + notes
        return '\n'.join(lines + self._environment_lines() +
                         self._training_lines()) + '\n'

    def _environment_lines(self) -> list:
        """Where the entries were computed: one line per environment, with
        the entries it computed where there is more than one."""
        entries = by_environment(self.environments)
        if len(entries) <= 1:
            return [f'\nComputed on {where}.' for where in entries]
        return [''] + [f'- {", ".join(names)}: computed on {where}.'
                       for where, names in entries.items()]

    def _training_lines(self) -> list:
        """Where the checkpoint was trained, when the report has a
        checkpoint."""
        if not self.model.get('checkpoint'):
            return []
        return [''] + describe_training(self.model)

    def write(self, out_dir: str, stem: str = 'robustness') -> Dict[str, str]:
        paths = dict(json=osp.join(out_dir, f'{stem}.json'),
                     md=osp.join(out_dir, f'{stem}.md'))
        atomic_write(paths['json'], json.dumps(self.to_dict(), indent=2,
                                               default=str))
        atomic_write(paths['md'], self.to_markdown())
        return paths

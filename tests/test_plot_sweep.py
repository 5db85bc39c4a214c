"""The sweep plot tool (paper Figures 5-6), as a user runs it on several
models' ``robustness.json``."""
import json

import pytest
from PIL import Image

from mmdet_robust.tools import plot_sweep
from mmdet_robust.tools.plot_sweep import sweep_curves


def report(scale: float) -> dict:
    """A robustness report's ``mAP`` with both sweeps, in the loop's order
    (eps 10 after eps 2, as :func:`expand_sweep` names them)."""
    mAP = {'clean': 0.9, 'dag': 0.2}
    for task in ('cls', 'loc'):
        for e in (2, 4, 6, 8, 10):
            mAP[f'{task}_pgd_eps{e}'] = scale * (1 - e / 20)
        for k in (1, 2, 5, 10, 20):
            mAP[f'{task}_pgd_steps{k}'] = scale * (1 - k / 40)
    return dict(mAP=mAP)


def test_sweep_curves_parse_names_and_sort_numerically():
    mAP = {'clean': 0.9, 'cls_pgd_eps10': 0.1, 'cls_pgd_eps2': 0.5,
           'cls_pgd_eps4': 0.3, 'cls_pgd_eps2.5': 0.45,
           'loc_pgd_steps20': 0.2, 'loc_pgd_steps1': 0.6, 'cls_pgd': 0.05,
           'dag': 0.2}
    assert sweep_curves(mAP) == {
        'eps': {'cls': [(2., 0.5), (2.5, 0.45), (4., 0.3), (10., 0.1)]},
        'steps': {'loc': [(1., 0.6), (20., 0.2)]}}


def test_cli_draws_one_line_per_model(tmp_path, monkeypatch):
    paths = []
    for name, scale in (('std', 0.2), ('mtd', 0.6), ('cls', 0.5)):
        (tmp_path / name).mkdir()
        paths.append(str(tmp_path / name / 'robustness.json'))
        with open(paths[-1], 'w') as f:
            json.dump(report(scale), f)
    figures = []
    close = plot_sweep.plt.close
    monkeypatch.setattr(plot_sweep.plt, 'close',
                        lambda fig: (figures.append(fig), close(fig)))
    out = tmp_path / 'plots'
    plot_sweep.main([*paths, '--labels', 'STD', 'MTD', 'CLS',
                     '--out-dir', str(out)])
    assert len(figures) == 2  # mAP vs eps, mAP vs steps
    for fig in figures:
        assert [ax.get_title() for ax in fig.axes] == [
            'loss_cls-based PGD', 'loss_loc-based PGD']
        for ax in fig.axes:
            assert [line.get_label() for line in ax.lines] == [
                'STD', 'MTD', 'CLS']
            xs = ax.lines[1].get_xdata()
            assert list(xs) == sorted(xs) and len(xs) == 5
    eps_ax = figures[0].axes[0]
    assert list(eps_ax.lines[1].get_ydata()) == pytest.approx(
        [100 * 0.6 * (1 - e / 20) for e in (2, 4, 6, 8, 10)])
    for name in ('mAP_vs_eps.png', 'mAP_vs_steps.png'):
        with Image.open(out / name) as im:
            assert im.width > 600 and im.height > 300


def test_cli_errors_name_the_problem(tmp_path, capsys):
    path = tmp_path / 'robustness.json'
    path.write_text(json.dumps(report(0.5)))
    with pytest.raises(SystemExit):
        plot_sweep.main([str(path), str(path), '--labels', 'only-one'])
    assert 'one label per report' in capsys.readouterr().err
    path.write_text(json.dumps(dict(mAP={'clean': 0.9, 'cls_pgd': 0.1})))
    with pytest.raises(SystemExit):
        plot_sweep.main([str(path), '--out-dir', str(tmp_path)])
    assert 'test_cfg.sweep' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        plot_sweep.main([str(path), str(tmp_path / 'none.json')])
    assert 'no such report: ' + str(tmp_path / 'none.json') in \
        capsys.readouterr().err

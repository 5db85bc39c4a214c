import json

import pytest
from PIL import Image

from conftest import REPO
from mmdet_robust.tools.demo import Demo, parse_args


def _demo_args(shapes_root, tmp_path, **extra):
    eval_cfg = tmp_path / 'eval.py'
    eval_cfg.write_text(
        f"_base_ = '{REPO}/configs/robust_eval/tiny_ssd_shapes.py'\n"
        "test_cfg = dict(attacks=dict(cls_pgd=dict(steps=2), "
        "loc_pgd=dict(steps=2), dag=dict(max_iters=3), "
        "dag_dense=dict(max_iters=3), rap=dict(steps=2)))\n")
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    workers = [f'{k}.{o}' for k in loaders for o in (
        'num_workers=0', 'persistent_workers=False')]
    args = ['--data-root', shapes_root, '--work-dir', str(tmp_path / 'demo'),
            '--eval-config', str(eval_cfg), '--eval-images', '4',
            '--train-options', 'train_cfg.max_epochs=1',
            'train_dataloader.dataset.indices=16', *workers,
            '--eval-options', *workers[4:]]
    for key, value in extra.items():
        args += [f'--{key.replace("_", "-")}', value]
    return parse_args(args)


@pytest.mark.slow
def test_demo_pipeline_writes_every_report_file(shapes_root, tmp_path,
                                                capsys):
    Demo(_demo_args(shapes_root, tmp_path)).run()
    out = capsys.readouterr().out
    work = tmp_path / 'demo'
    report = json.load(open(work / 'report.json'))
    for model in ('std', 'mtd'):
        assert set(report['mAP'][model]) == {'clean', 'cls_pgd', 'loc_pgd',
                                             'dag', 'dag_dense', 'rap'}
        for axis in ('eps', 'steps'):
            assert len(report['sweeps'][model][axis]['cls']) == 5
    assert {'train_std', 'train_mtd', 'eval_std', 'eval_mtd'} <= set(
        report['timings_s'])
    md = (work / 'report.md').read_text()
    assert '| STD |' in md and '| MTD |' in md and 'Wall time' in md
    for png in ('mAP_vs_eps.png', 'mAP_vs_steps.png', 'detections.png'):
        path = work / png
        assert path.stat().st_size > 10_000
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert min(im.size) > 300
    assert '| model | clean |' in out and 'report.md' in out

    # a second run reuses every finished stage
    Demo(_demo_args(shapes_root, tmp_path)).run()
    out = capsys.readouterr().out
    for stage in ('train_std', 'train_mtd', 'eval_std', 'eval_mtd'):
        assert f'[demo] {stage}: done before, reused' in out


def test_a_failing_stage_is_named(shapes_root, tmp_path):
    args = _demo_args(shapes_root, tmp_path, config='configs/missing.py')
    with pytest.raises(SystemExit, match="stage 'train_std' failed"):
        Demo(args).run()

import json
import os
import os.path as osp

import pytest
from PIL import Image

from conftest import REPO
import mmdet_robust
from mmdet_robust.evaluation import environment
from mmdet_robust.evaluation.environment import describe
from mmdet_robust.engine.robust_test_loop import (attack_configs,
                                                  evaluation_setup,
                                                  json_normalised)
from mmdet_robust.tools import demo as demo_module
from mmdet_robust.tools.demo import Demo, parse_args
from mmdet_robust.tools.demo_report import figure_columns


def _demo_args(shapes_root, tmp_path, **extra):
    eval_cfg = tmp_path / 'eval.py'
    eval_cfg.write_text(
        f"_base_ = '{REPO}/configs/robust_eval/tiny_ssd_shapes.py'\n"
        "test_cfg = dict(attacks=dict(cls_pgd=dict(steps=2), "
        "loc_pgd=dict(steps=2), con_pgd=dict(steps=2), "
        "dag=dict(max_iters=3), "
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
        assert set(report['mAP'][model]) == {
            'clean', 'cls_pgd', 'loc_pgd', 'con_pgd', 'dag', 'dag_dense',
            'rap'}
        for axis in ('eps', 'steps'):
            assert len(report['sweeps'][model][axis]['cls']) == 5
    assert {'train_std', 'train_mtd', 'eval_std', 'eval_mtd'} <= set(
        report['timings_s'])
    for model, seconds in report['seconds_per_image'].items():
        assert set(seconds) == set(report['mAP'][model])
        assert all(v > 0 for v in seconds.values())
    for model, stats in report['attack_stats'].items():
        assert set(stats) == set(report['mAP'][model]) - {'clean'}
        assert all(0 <= s['linf'] <= 8 + 1e-3 for s in stats.values())
        assert stats['cls_pgd']['linf'] > 0
        assert 0 <= stats['dag']['dag_iters'] <= 150
    md = (work / 'report.md').read_text()
    assert '| STD |' in md and '| MTD |' in md and 'Wall time' in md
    # where both evaluations ran: this process's machine and packages
    here = environment('cpu')
    for model in ('std', 'mtd'):
        env = report['environment'][model]
        assert env['packages'] == here['packages']
        assert env['device'] == 'cpu' and env['cpu'] == here['cpu']
    assert f'Evaluated on {describe(env)}.' in md
    # and where both were trained, as their checkpoints record it
    for model in ('std', 'mtd'):
        assert report['trained'][model]['train_init'] is None  # warm-up
        (trained, ) = report['trained'][model]['train_environments']
        assert trained['environment'] == env and trained['world_size'] == 1
        begin, end = trained['iters']
        assert begin == 0 and end > 0
        assert f'{model.upper()}: Trained (iterations 0-{end}, 1 process) ' \
            f'on {describe(env)}.' in md
    assert '- dag, MTD: ' in md and 'iterations per image' in md
    assert 'ms per test image' in md
    assert 'MTD starts from the config\'s own initialisation, on clean ' \
        'batches for the first half' in md
    assert report['settings']['mtd_init'] == 'warmup'
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

    # an attack changed in the eval config: both evaluations run again,
    # and RobustTestLoop recomputes only that attack's entry
    args = _demo_args(shapes_root, tmp_path)
    args.eval_options.append('test_cfg.attacks.rap.steps=3')
    Demo(args).run()
    out = capsys.readouterr().out
    for model in ('std', 'mtd'):
        assert f'[demo] train_{model}: done before, reused' in out
        assert f'[demo] eval_{model} ...' in out
        log = (work / f'eval_{model}.log').read_text()
        assert 'reusing finished entries' in log
        rerun = log.split('reusing finished entries')[1].split('\n')[0]
        assert 'cls_pgd' in rerun and 'rap' not in rerun.split(', ')
        prints = json.load(open(work / model / 'robustness.json'))[
            'fingerprints']
        assert prints['rap']['attack']['steps'] == 3


def test_a_failing_stage_is_named(shapes_root, tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text(f"_base_ = '{REPO}/configs/tiny_ssd_std_shapes.py'\n"
                      "model = dict(type='NoSuchDetector')\n")
    args = _demo_args(shapes_root, tmp_path, config=str(broken))
    with pytest.raises(SystemExit, match="stage 'train_std' failed"):
        Demo(args).run()


def test_a_stage_failing_with_any_error_is_named(tmp_path):
    """Not only the tools' failures: any error in a stage (here the report
    stage's) ends the demo with the stage's name and the error, and the
    timings of the stages that finished stay recorded."""
    args = parse_args(['--work-dir', str(tmp_path / 'demo')])
    demo = Demo(args)
    demo.stage('train_std', lambda: None, lambda: False)

    def broken():
        raise OSError('No space left on device')

    with pytest.raises(SystemExit, match="stage 'report' failed: OSError: "
                       'No space left on device'):
        demo.stage('report', broken, lambda: False)
    timings = json.load(open(tmp_path / 'demo' / 'timings.json'))
    assert 'train_std' in timings and 'report' not in timings


def test_training_stages_follow_their_inputs(tmp_path, monkeypatch):
    """MTD trains from scratch with a clean first half (``warmup``, the
    default), from scratch, or from the STD checkpoint (``std``);
    a training stage is redone when the data or, for MTD, the STD checkpoint
    is newer than its own checkpoint, and reused otherwise."""
    clock, runs = [100.], []

    def tick(path):
        clock[0] += 10
        os.utime(path, (clock[0], clock[0]))

    def fake_train(tool, args, options, log_path, *rest):
        work_dir = args[args.index('--work-dir') + 1]
        runs.append((osp.basename(work_dir), list(options)))
        os.makedirs(work_dir, exist_ok=True)
        ckpt = osp.join(work_dir, 'epoch_24.pth')
        open(ckpt, 'w').close()
        tick(ckpt)
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)

    monkeypatch.setattr(demo_module, '_run_tool', fake_train)

    def train_both(*flags, work_dir='demo'):
        demo = Demo(parse_args(['--work-dir', str(tmp_path / work_dir),
                                *flags]))
        demo.data_stamp = str(stamp)
        runs.clear()
        for model in ('std', 'mtd'):
            demo.train(model)
        return [model for model, _ in runs]

    stamp = tmp_path / 'make_shapes.json'
    stamp.write_text('{}')
    tick(stamp)
    std_ckpt = str(tmp_path / 'demo' / 'std' / 'epoch_24.pth')
    from_std = ('--mtd-init', 'std')
    assert train_both(*from_std) == ['std', 'mtd']
    assert f'load_from={std_ckpt}' in runs[1][1]
    assert 'train_cfg.attacker.domain=mtd' in runs[1][1]
    assert not any(o.startswith('load_from') for o in runs[0][1])
    assert train_both(*from_std) == []  # everything reused
    tick(stamp)  # regenerated data
    assert train_both(*from_std) == ['std', 'mtd']
    tick(std_ckpt)  # a newer STD model
    assert train_both(*from_std) == ['mtd']
    scratch = ('--mtd-init', 'scratch')
    assert train_both(*scratch, work_dir='scratch') == ['std', 'mtd']
    assert not any(o.startswith('load_from') for o in runs[1][1])
    tick(str(tmp_path / 'scratch' / 'std' / 'epoch_24.pth'))
    assert train_both(*scratch, work_dir='scratch') == []  # not an input
    # warmup (the default): from scratch, clean for the first half of the
    # same schedule
    assert train_both(work_dir='warmup') == ['std', 'mtd']
    assert 'train_cfg.adv_begin=12' in runs[1][1]  # of the config's 24
    assert not any(o.startswith('load_from') for o in runs[1][1])
    assert train_both('--mtd-init', 'warmup', '--train-options',
                      'train_cfg.max_epochs=5', work_dir='warmup5') == [
        'std', 'mtd']
    assert 'train_cfg.adv_begin=2' in runs[1][1]
    assert not any('adv_begin' in o for o in runs[0][1])
    assert not any('attacker=None' in o for o in runs[0][1])
    # an adversarial config of the family as --config (the issue's
    # DEMO_CONFIG=configs/ssd300_vgg16_mtd_voc.py): STD keeps its loop
    # without an attacker, so it trains on clean batches throughout
    mtd_config = 'configs/tiny_ssd_mtd_shapes.py'
    assert train_both('--config', mtd_config, work_dir='from_mtd') == [
        'std', 'mtd']
    assert runs[0][1][-2:] == demo_module.STD_FROM_ADVERSARIAL
    assert 'train_cfg.attacker.domain=mtd' in runs[1][1]
    assert 'train_cfg.adv_begin=12' in runs[1][1]
    std_cfg = demo_module._load_config(
        mtd_config, demo_module.STD_FROM_ADVERSARIAL).train_cfg
    assert std_cfg.attacker is None and std_cfg.adv_begin == 0
    with pytest.raises(SystemExit):
        parse_args(['--mtd-init', 'imagenet'])


def test_eval_stage_is_redone_for_a_changed_attack_setup_or_version(
        tmp_path, monkeypatch):
    """The evaluation stage counts as done only while its report has every
    configured attack with the same settings, under the same model, test
    data and evaluator settings, computed by this version."""
    config = osp.join(REPO, 'configs/robust_eval/tiny_ssd_shapes.py')
    cfg = demo_module._load_config(config, [])
    wanted = json_normalised(attack_configs(cfg.test_cfg.attacks))
    setup = evaluation_setup(cfg)
    report = tmp_path / 'robustness.json'

    def write(version, setup=setup, **changed):
        prints = {name: dict(attack=dict(cfg, **changed.get(name, {})),
                             setup=setup, mmdet_robust=version)
                  for name, cfg in wanted.items()}
        report.write_text(json.dumps(dict(fingerprints=prints)))
        return demo_module._report_covers(str(report), config, [])

    assert write(mmdet_robust.__version__)
    assert not write(mmdet_robust.__version__, rap=dict(steps=3))
    assert not write('0.0.1')
    assert not write(None)  # a report from before versions were recorded
    assert not write(mmdet_robust.__version__, setup=None)  # nor setups
    # the same attacks on a model that predicts by another rule, with
    # another score threshold, or on other test data
    write(mmdet_robust.__version__)
    one_label = osp.join(REPO,
                         'configs/robust_eval/tiny_ssd_shapes_one_label.py')
    assert not demo_module._report_covers(str(report), one_label, [])
    for option in ('model.test_cfg.score_thr=0.5',
                   'test_dataloader.dataset.data_root=elsewhere/'):
        assert not demo_module._report_covers(str(report), config, [option])
    assert demo_module._report_covers(str(report), config, [])


def test_figure_shows_the_papers_columns_the_eval_config_has():
    """An eval config without DAG and RAP (a head they cannot read): its
    figure shows clean and cls-PGD instead of failing after both
    evaluations."""
    paper = dict(cls_pgd={}, loc_pgd={}, con_pgd={}, dag={}, dag_dense={},
                 rap={})
    assert figure_columns(paper) == ('clean', 'cls_pgd', 'dag', 'rap')
    assert figure_columns(dict(cls_pgd={}, loc_pgd={}, con_pgd={})) == (
        'clean', 'cls_pgd')


@pytest.mark.parametrize('argv, env, match', [
    (['--eval-images', '0'], {}, "an integer >= 1, got '0'"),
    ([], {'DEMO_EVAL_IMAGES': 'all'}, "an integer >= 1, got 'all'"),
    ([], {'DEMO_MTD_INIT': 'half'}, "DEMO_MTD_INIT='half': choose one of"),
    (['--eval-config', 'configs/robust_eval/nope.py'], {},
     "--eval-config 'configs/robust_eval/nope.py' is not a file"),
    ([], {'DEMO_CONFIG': 'configs/nope.py'},
     "--config 'configs/nope.py' is not a file"),
    (['--data-root', 'data/no_such_devkit/'], {},
     "--data-root 'data/no_such_devkit/' is not a directory"),
])
def test_bad_flags_and_env_stop_before_any_stage(argv, env, match,
                                                 monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert match in capsys.readouterr().err
    for name in ('DEMO_EVAL_IMAGES', 'DEMO_MTD_INIT', 'DEMO_CONFIG'):
        monkeypatch.delenv(name, raising=False)
    assert parse_args([]).eval_images == 50

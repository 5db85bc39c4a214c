"""Progress lines of the robust evaluation (``BatchProgress``)."""
import pytest
from mmengine.runner import Runner

from conftest import robust_cfg
from mmdet_robust.engine import progress as progress_module
from mmdet_robust.engine.progress import BatchProgress, clock


@pytest.fixture
def logged(monkeypatch):
    lines = []
    monkeypatch.setattr(progress_module, 'print_log',
                        lambda msg, logger=None: lines.append(msg))
    return lines


def test_lines_at_most_every_interval_and_at_the_end(monkeypatch, logged):
    """With a clock at 0, 10, 20, ... s: a line when 25 s have passed since
    the last one, and after the last batch, with the elapsed time and the
    remaining batches at the finished ones' mean cost."""
    now = iter(range(0, 1000, 10))
    monkeypatch.setattr(progress_module.time, 'perf_counter',
                        lambda: next(now))
    progress = BatchProgress(total=7, interval=25)
    for _ in range(7):
        progress.step('31 entries')
    assert logged == [
        'robust test [3/7] batches (31 entries), elapsed 0:00:30, '
        'eta 0:00:40',
        'robust test [6/7] batches (31 entries), elapsed 0:01:00, '
        'eta 0:00:10',
        'robust test [7/7] batches (31 entries), elapsed 0:01:10, '
        'eta 0:00:00']
    assert clock(3725.4) == '1:02:05'


def test_the_loop_logs_each_batch_of_each_pass(shapes_root, tmp_path,
                                               trained_checkpoint, logged):
    """``progress_interval=0``: one line per batch and pass, numbered over
    all passes, each naming its pass's entries."""
    path, _ = trained_checkpoint
    cfg = robust_cfg(shapes_root, tmp_path, path, cls_pgd=dict(
        type='PGDAttack', task='cls', eps=8., steps=1))
    cfg.test_cfg.update(per_attack_passes=True, progress_interval=0)
    runner = Runner.from_cfg(cfg)
    batches = len(runner.test_dataloader)
    runner.test()
    total = 2 * batches
    assert [line.split(' batches (')[0] for line in logged] == [
        f'robust test [{k}/{total}]' for k in range(1, total + 1)]
    assert all('(pass 1/2: clean)' in line for line in logged[:batches])
    assert all('(pass 2/2: cls_pgd)' in line for line in logged[batches:])
    assert logged[-1].endswith(', eta 0:00:00')


@pytest.mark.parametrize('interval', [-1, 'often', None])
def test_a_bad_interval_is_named(shapes_root, tmp_path, trained_checkpoint,
                                 interval):
    path, _ = trained_checkpoint
    cfg = robust_cfg(shapes_root, tmp_path, path)
    cfg.test_cfg.progress_interval = interval
    with pytest.raises(ValueError, match=r'test_cfg.progress_interval must '
                       r'be a number in \[0, inf\) seconds'):
        Runner.from_cfg(cfg).test()

"""Progress of a robust evaluation, logged by wall time."""
import datetime
import time

from mmengine.logging import print_log


def clock(seconds: float) -> str:
    """``h:mm:ss``, as mmengine writes an eta."""
    return str(datetime.timedelta(seconds=int(round(seconds))))


class BatchProgress:
    """Logs ``robust test [k/n] batches (what), elapsed 0:02:51, eta
    0:01:26`` at most every ``interval`` seconds and after the last batch.

    A robust batch runs every attack (about 300 gradient steps for the
    paper's table and sweeps), so mmengine's ``LoggerHook``, whose interval
    counts batches tuned for clean ones (10 or 50), can stay silent for the
    whole evaluation. The eta assumes the remaining batches cost what the
    finished ones did on average.

    Args:
        total: number of batches to run, over all passes.
        interval: least number of seconds between two lines; 0 logs every
            batch.
    """

    def __init__(self, total: int, interval: float) -> None:
        self.total = total
        self.interval = interval
        self.done = 0
        self.start = self.last = time.perf_counter()

    def step(self, what: str) -> None:
        """One more batch done; ``what`` says what it evaluated."""
        self.done += 1
        now = time.perf_counter()
        if now - self.last < self.interval and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print_log(f'robust test [{self.done}/{self.total}] batches ({what}), '
                  f'elapsed {clock(elapsed)}, eta {clock(eta)}',
                  logger='current')

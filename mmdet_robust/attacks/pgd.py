"""Task-loss PGD for robustness evaluation (paper sec. 5.2, Fig. 5-6)."""
from typing import Optional

from mmdet.registry import MODELS
from ..checks import is_integer, is_number
from .task_domain import TaskDomainAttacker


def default_step_size(eps: float, steps: int) -> float:
    """Evaluation PGD's alpha (pixel units): ``min(eps, max(eps / 4,
    2 * eps / steps))``; 2 at eps 8 and 20 steps, eps for 1 or 2 steps."""
    return min(eps, max(eps / 4., 2. * eps / steps))


@MODELS.register_module()
class PGDAttack(TaskDomainAttacker):
    """k-step sign-gradient PGD on a task loss, for evaluation.

    The same PGD as adversarial training (:class:`TaskDomainAttacker`, one
    implementation of ``x_{t+1} = P_Sx(x_t + alpha * sign(grad loss_T))``),
    with evaluation defaults: 20 steps from the clean image (no random start),
    ``alpha = max(eps / 4, 2 * eps / steps)`` clipped to ``eps``. ``eps / 4``
    is Madry et al.'s evaluation step (2 pixel levels at eps 8, 20 steps);
    ``2 * eps / steps`` takes over for a few steps, so that the iterate can
    still reach any corner of the eps ball and move along it.

    Args:
        task: ``cls`` (cls-PGD), ``loc`` (loc-PGD), ``con`` (total loss) or
            ``mtd`` (per image the stronger of cls- and loc-PGD).
        eps: budget in pixel units of [0, 255].
        steps: number of PGD steps k.
        step_size: alpha in pixel units; default
            ``min(eps, max(eps / 4, 2 * eps / k))``.
        random_start: start from ``U(B(x, eps))`` instead of ``x``.
    """

    TASKS = ('cls', 'loc', 'con', 'mtd')

    def __init__(self,
                 task: str = 'cls',
                 eps: float = 8.,
                 steps: int = 20,
                 step_size: Optional[float] = None,
                 random_start: bool = False,
                 task_keys: Optional[dict] = None,
                 seed: int = 0) -> None:
        if task not in self.TASKS:
            raise ValueError(f'unknown PGD task {task!r}; choose one of '
                             f'{self.TASKS}')
        if step_size is None and is_number(eps) and is_integer(steps) \
                and steps > 0:
            step_size = default_step_size(float(eps), steps)
        super().__init__(domain=task, eps=eps, steps=steps,
                         step_size=step_size, random_start=random_start,
                         task_keys=task_keys, seed=seed)
        self.task = task

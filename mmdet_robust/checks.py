"""Validation of user-given settings (attack budgets, step counts, flags),
one place for the attacks, loops and heads: each check returns the value or
raises a ValueError that names the setting and what it must be. No
dependencies inside mmdet_robust, so any module can import it."""


def is_integer(value) -> bool:
    """An ``int`` and not a ``bool`` (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An ``int`` or ``float``, not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_range(name: str, value: float, low: float, high: float,
                bounds: str = '(]', unit: str = '') -> float:
    """``value`` a number in the interval from ``low`` to ``high``, ends
    open or closed as ``bounds`` writes them (``'(]'``, ``'[)'``, ...),
    else a ValueError naming it."""
    if is_number(value):
        above = low < value or (bounds[0] == '[' and value == low)
        below = value < high or (bounds[1] == ']' and value == high)
        if above and below:
            return float(value)
    raise ValueError(f'{name} must be a number in {bounds[0]}{low:g}, '
                     f'{high:g}{bounds[1]}{unit}, got {value!r}')


def check_budget(name: str, value: float) -> float:
    """``value`` in (0, 255] pixel units, else a ValueError naming it."""
    return check_range(name, value, 0, 255, '(]', ' pixel units of [0, 255]')


def check_flag(name: str, value) -> bool:
    """``value`` itself when it is True or False, else a ValueError naming
    it (``1`` or ``'yes'`` are not flags)."""
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, got {value!r}')
    return value


def check_steps(steps, name: str = 'steps') -> int:
    """``steps`` an integer >= 1, else a ValueError naming it."""
    if not is_integer(steps) or steps < 1:
        raise ValueError(f'{name} must be an integer >= 1, got {steps!r}')
    return steps

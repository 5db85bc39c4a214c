from .report import RobustnessReport, atomic_write, headline_key

__all__ = ['RobustnessReport', 'atomic_write', 'headline_key']

# Robustness reports fingerprint their entries with this version, so a run
# in an old work dir recomputes instead of reusing results of older code:
# bump it whenever an attack can give other numbers under the same settings.
__version__ = '0.2.0'

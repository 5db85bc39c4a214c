"""Synthetic VOC-format data (see :mod:`.make_shapes`)."""

"""``edgekit compress``: a model made smaller and faster for an edge device, with a report of what it gained and cost.

:func:`compress` is the whole run (:mod:`.flow`); :class:`CompressOptions` (:mod:`.options`) is everything it can
be told. Inside: :mod:`.run` (the state of one run, as one object), :mod:`.output` (what an output makes),
:mod:`.onnx_output` and :mod:`.tflite_output` (the two targets), :mod:`.target` (a board's profile) and
:mod:`.write` (the files, the bundle and ``report.json`` last).
"""

from edgekit.compress.flow import compress
from edgekit.compress.options import TARGETS, CompressOptions
from edgekit.compress.write import MODEL_FILE, REPORT_FILE, TFLITE_FILE

__all__ = ["MODEL_FILE", "REPORT_FILE", "TARGETS", "TFLITE_FILE", "CompressOptions", "compress"]

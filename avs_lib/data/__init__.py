"""AVSBench data: readers, boxes, audio front end and safe pickles (the audit is `avs_lib.datatools.check`)."""

from avs_lib.data.audio import load_audio_examples
from avs_lib.data.avsbench import AVSBenchMS3, AVSBenchS4, collate_clips
from avs_lib.data.safe_pickle import load_tensor_pickle

__all__ = ["AVSBenchMS3", "AVSBenchS4", "collate_clips", "load_audio_examples", "load_tensor_pickle"]

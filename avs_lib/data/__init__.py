"""AVSBench data: readers, boxes, audio front end and safe pickles (the audit is `avs_lib.datatools.check`)."""

from avs_lib.data.audio import load_audio_examples, load_log_mel_cached, waveform_to_examples
from avs_lib.data.avsbench import AVSBenchMS3, AVSBenchS4, ClipPaths, ClipRecord, collate_clips
from avs_lib.data.boxes import (
    box_from_mask,
    crop_and_resize,
    read_voc,
    read_yolo,
    scale_box,
    write_voc,
)
from avs_lib.data.errors import DataFormatError
from avs_lib.data.safe_pickle import load_tensor_pickle

__all__ = ["AVSBenchMS3", "AVSBenchS4", "ClipPaths", "ClipRecord", "DataFormatError", "box_from_mask",
           "collate_clips", "crop_and_resize", "load_audio_examples", "load_log_mel_cached",
           "load_tensor_pickle", "read_voc", "read_yolo", "scale_box", "waveform_to_examples", "write_voc"]

"""avs_lib: audio-visual segmentation (AVSBench, TPAVI) and the thesis' crop losses."""

__version__ = "0.1.0"

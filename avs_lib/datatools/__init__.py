"""Benchmark tooling: the synthetic AVSBench-layout generator with its shifted splits, the encoders'
synthetic pretraining, the dataset checker and the crop-label bootstrap; built on the core, never
imported by it."""

"""Benchmark tooling: the presets (profiles, methods, `build_config`), the synthetic AVSBench-layout
generator with its shifted splits, the encoders' synthetic pretraining, the dataset checker and the
crop-label bootstrap; built on the core, never imported by it."""

"""Shared fixtures: one tiny synthetic AVSBench-format dataset per test session."""

import warnings

import pytest


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """8 train / 4 val / 4 test clips at 64 px, made once by the generator."""
    from avs_lib.datatools.synth import make_dataset

    root = tmp_path_factory.mktemp("synth") / "tiny"
    make_dataset(root, videos_per_split=(8, 4, 4), image_size=64, seed=3, progress=False, workers=1)
    return root


@pytest.fixture(autouse=True)
def _quiet_random_init_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no pretrained weights given")
        yield

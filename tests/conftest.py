import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic DeepLesion release shared by the data tests, as the generator tool writes it."""
    from alignshift.apps.make_synthetic_deeplesion import write_synthetic

    out = tmp_path_factory.mktemp("synthetic") / "DeepLesion"
    write_synthetic(str(out), num_images=24, image_size=96, seed=3, progress=False)
    return out


SLOW_TESTS = os.environ.get("ALIGNSHIFT_SLOW_TESTS") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes minutes on a CPU (e.g. Inductor compiling a whole backbone); "
        "skipped unless ALIGNSHIFT_SLOW_TESTS=1")


def pytest_collection_modifyitems(config, items):
    if SLOW_TESTS:
        return
    skip = pytest.mark.skip(reason="slow (minutes on a CPU): set ALIGNSHIFT_SLOW_TESTS=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

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

import os

import pytest


@pytest.fixture(scope="session")
def prepared_root(synthetic_root):
    """The shared synthetic release with annotations from tools/prepare_deeplesion.py."""
    from alignshift.apps import prepare_deeplesion

    if not os.path.exists(synthetic_root / "annotations" / "deeplesion_test.json"):
        assert prepare_deeplesion.main(["--data-root", str(synthetic_root)]) == 0
    return synthetic_root


@pytest.fixture(scope="session")
def mmdet_registered():
    from mmdet.utils import register_all_modules

    import mmdet_plugins  # noqa: F401

    register_all_modules(init_default_scope=True)

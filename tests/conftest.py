import os
import tempfile

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The structure cache of the test run: its own folder, never the user's ~/.cache.
os.environ["PRUNING_STUDIO_CACHE"] = tempfile.mkdtemp(prefix="studio-test-cache-")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def demo():
    from studio.core import load_model

    return load_model("demo")


@pytest.fixture(scope="session")
def demo_map(demo):
    from studio.core import map_structure

    return map_structure(demo)


@pytest.fixture(scope="session")
def r18():
    from studio.core import load_model, map_structure

    lm = load_model("resnet18", input_size=(3, 64, 64))
    return lm, map_structure(lm)

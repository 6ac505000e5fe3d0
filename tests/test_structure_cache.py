"""The structure cache: a reopened architecture gets an equal map from disk, the key follows
everything the map depends on, and damaged or foreign files are never trusted or removed."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from studio.core.plan.probe import map_checked
from studio.core.structure import cache
from studio.core.structure.map import StructureMap


class Net(nn.Module):
    def __init__(self, width=16, groups=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=groups)  # orbits
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = y + torch.relu(self.bn2(self.conv2(y)))  # a residual: conv1 and conv2 couple
        return self.fc(y.mean((2, 3)))


class Switch(Net):
    def __init__(self, residual: bool):
        super().__init__()
        self.residual = residual  # no shape shows it

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        z = torch.relu(self.bn2(self.conv2(y)))
        return self.fc((y + z if self.residual else z).mean((2, 3)))


class Configured(Net):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        z = torch.relu(self.bn2(self.conv2(y)))
        return self.fc((y + z if self.cfg["skip"] else z).mean((2, 3)))


class OtherForward(Net):
    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))  # no residual: two groups
        return self.fc(y.mean((2, 3)))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_STUDIO_CACHE", str(tmp_path))
    cache.clear_memory()
    yield tmp_path
    cache.clear_memory()


def _same(a: StructureMap, b: StructureMap) -> None:
    da, db = dict(a.as_dict(), arch=""), dict(b.as_dict(), arch="")  # the label may differ
    assert json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)
    for ga, gb in zip(a.groups, b.groups, strict=True):
        assert (ga.prunable, ga.reason, ga.units) == (gb.prunable, gb.reason, gb.units)
        assert (ga.orbit is None) == (gb.orbit is None)
        if ga.orbit is not None:
            assert np.array_equal(ga.orbit, gb.orbit)
        for ma, mb in zip(ga.members, gb.members, strict=True):
            assert (ma.layer, ma.dim, ma.row) == (mb.layer, mb.dim, mb.row)
            for k in ("idx", "root_idx", "counts"):
                assert np.array_equal(getattr(ma, k), getattr(mb, k))


def test_a_reopened_architecture_comes_from_disk_equal(folder, r18):
    lm, fresh = r18
    first = map_checked(lm.model, lm.input_size, "first")
    files = list(folder.glob("map-*.json"))
    assert len(files) == 1
    json.loads(files[0].read_text())  # plain JSON, nothing to unpickle
    cache.clear_memory()  # a new process: only the disk is left
    again = map_checked(lm.model, lm.input_size, "again")
    assert again.arch == "again"
    _same(first, again)
    _same(fresh, again)


def test_orbits_and_probed_groups_survive_the_round_trip(folder):
    model = Net().eval()
    fresh = StructureMap(model, (3, 16, 16))
    assert any(g.orbit is not None for g in fresh.groups)
    _same(fresh, StructureMap.from_state(json.loads(json.dumps(fresh.to_state()))))


def test_the_key_follows_widths_input_size_and_forward_code(folder):
    base = cache.structure_key(Net().eval(), (3, 16, 16))
    assert base == cache.structure_key(Net().eval(), (3, 16, 16))  # weights do not matter
    assert base != cache.structure_key(Net().eval(), (3, 32, 32))
    assert base != cache.structure_key(Net(width=32).eval(), (3, 16, 16))
    assert base != cache.structure_key(Net(groups=2).eval(), (3, 16, 16))
    assert base != cache.structure_key(OtherForward().eval(), (3, 16, 16))
    a, b = Configured({"skip": True}).eval(), Configured({"skip": False}).eval()
    assert cache.structure_key(a, (3, 16, 16)) != cache.structure_key(b, (3, 16, 16))
    on, off = Switch(True).eval(), Switch(False).eval()
    assert cache.structure_key(on, (3, 16, 16)) != cache.structure_key(off, (3, 16, 16))
    assert len(map_checked(on, (3, 16, 16)).groups) != len(map_checked(off, (3, 16, 16)).groups)
    # ... and so do the maps: a different forward is never served the cached map
    a = map_checked(Net().eval(), (3, 16, 16))
    b = map_checked(OtherForward().eval(), (3, 16, 16))
    assert len(a.groups) != len(b.groups)


def test_a_damaged_entry_is_a_miss_and_is_rewritten(folder):
    model = Net().eval()
    fresh = map_checked(model, (3, 16, 16))
    (entry,) = folder.glob("map-*.json")
    good = json.loads(entry.read_text())
    too_few = dict(good, rows=good["rows"][:3])
    other_size = dict(good, input_size=[3, 224, 224])
    bad_index = json.loads(json.dumps(good))
    bad_index["lengths"][0] += 1  # arrays no longer match their lengths
    for damage in (
        "{not json",
        json.dumps({"arch": "x"}),
        "\x00\x01",
        "[" * 200_000,  # nested past the parser's recursion limit
        json.dumps(too_few),
        json.dumps(other_size),
        json.dumps(dict(good, blocks="abc")),
        json.dumps(bad_index),
    ):
        entry.write_text(damage)
        cache.clear_memory()
        _same(fresh, map_checked(model, (3, 16, 16)))
        json.loads(entry.read_text())  # rewritten whole


def test_the_cache_removes_only_its_own_files(folder, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 1)
    keep = folder / "notes.json"
    keep.write_text("mine")
    look_alike = folder / "map-mine.json"
    look_alike.write_text("mine too")
    map_checked(Net(width=8).eval(), (3, 16, 16))
    map_checked(Net(width=12).eval(), (3, 16, 16))
    assert len(list(folder.glob("map-" + "?" * 32 + ".json"))) == 1
    assert keep.read_text() == "mine" and look_alike.read_text() == "mine too"


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_STUDIO_CACHE", "off")
    cache.clear_memory()
    monkeypatch.chdir(tmp_path)
    map_checked(Net().eval(), (3, 16, 16))
    assert cache.cache_dir() is None and not list(tmp_path.iterdir())
    cache.clear_memory()

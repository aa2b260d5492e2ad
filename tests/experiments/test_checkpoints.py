"""Agent checkpoints: the previous good one is kept until the next is written and verified, and a
damaged newest one falls back to it with a warning."""

import json

import pytest

from forethought.experiments import checkpoints
from forethought.experiments.checkpoints import check_manifest, latest_agent_checkpoint, save_agent_checkpoint
from forethought.serialization import CheckpointError


def writer(text: str):
    """An agent's save: a state file and a file in a subfolder (as Dyna's ``sac/``)."""
    def save(path):
        (path / "sac").mkdir(parents=True)
        (path / "state.json").write_text(json.dumps({"text": text}))
        (path / "sac" / "networks.bin").write_bytes(text.encode() * 10)
    return save


def text(folder) -> str:
    return json.loads((folder / "state.json").read_text())["text"]


def flip_a_byte(path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))


def test_the_previous_good_checkpoint_is_kept(tmp_path):
    folder = tmp_path / "checkpoints" / "agent"
    save_agent_checkpoint(writer("one"), folder)
    assert text(folder) == "one" and not folder.with_name("agent.old").exists()
    save_agent_checkpoint(writer("two"), folder)
    save_agent_checkpoint(writer("three"), folder)
    assert text(folder) == "three" and text(folder.with_name("agent.old")) == "two"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["agent", "agent.old"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["sac/networks.bin", "state.json"]  # subfolders are covered


@pytest.mark.parametrize("damaged", ["state.json", "sac/networks.bin"])
def test_a_corrupted_byte_in_the_latest_falls_back_to_the_previous(tmp_path, damaged):
    folder = tmp_path / "agent"
    save_agent_checkpoint(writer("previous"), folder)
    save_agent_checkpoint(writer("latest"), folder)
    flip_a_byte(folder / damaged)
    messages = []
    chosen = latest_agent_checkpoint(folder, messages.append)
    assert chosen == folder.with_name("agent.old") and text(chosen) == "previous"
    assert len(messages) == 1 and f"{folder / damaged} is corrupted or truncated" in messages[0]


def test_a_damaged_current_checkpoint_is_not_kept_as_the_previous(tmp_path):
    folder = tmp_path / "agent"
    save_agent_checkpoint(writer("one"), folder)
    save_agent_checkpoint(writer("two"), folder)
    flip_a_byte(folder / "state.json")
    save_agent_checkpoint(writer("three"), folder)
    assert text(folder) == "three" and text(folder.with_name("agent.old")) == "one"


def test_a_checkpoint_that_does_not_verify_leaves_the_old_ones(tmp_path, monkeypatch):
    folder = tmp_path / "agent"
    save_agent_checkpoint(writer("one"), folder)
    save_agent_checkpoint(writer("two"), folder)
    real = checkpoints.write_manifest

    def bad_manifest(path, agent=None):  # a write the disk did not keep: the read-back differs
        real(path, agent)
        flip_a_byte(path / "state.json")

    monkeypatch.setattr(checkpoints, "write_manifest", bad_manifest)
    with pytest.raises(CheckpointError, match=r"just written does not read back .*checksum mismatch.*left as it was"):
        save_agent_checkpoint(writer("three"), folder)
    assert text(folder) == "two" and text(folder.with_name("agent.old")) == "one"
    assert not folder.with_name("agent.new").exists()


def test_a_complete_new_folder_from_a_crash_is_swapped_in_first(tmp_path):
    folder = tmp_path / "agent"
    save_agent_checkpoint(writer("one"), folder)
    new = folder.with_name("agent.new")
    writer("two")(new)
    checkpoints.write_manifest(new)  # crashed after verifying, before the swap
    assert text(latest_agent_checkpoint(folder)) == "two"
    save_agent_checkpoint(writer("three"), folder)
    assert text(folder) == "three" and text(folder.with_name("agent.old")) == "two"


def test_an_incomplete_new_folder_is_ignored_and_replaced(tmp_path):
    folder = tmp_path / "agent"
    save_agent_checkpoint(writer("one"), folder)
    writer("half")(folder.with_name("agent.new"))  # no manifest: never finished
    assert text(latest_agent_checkpoint(folder)) == "one"
    save_agent_checkpoint(writer("two"), folder)
    assert text(folder) == "two" and text(folder.with_name("agent.old")) == "one"


def test_nothing_usable_names_every_problem(tmp_path):
    folder = tmp_path / "agent"
    with pytest.raises(CheckpointError, match="no usable agent checkpoint.*agent does not exist"):
        latest_agent_checkpoint(folder)
    save_agent_checkpoint(writer("one"), folder)
    save_agent_checkpoint(writer("two"), folder)
    (folder / "manifest.json").write_text("{not json")
    (folder.with_name("agent.old") / "sac" / "networks.bin").unlink()
    with pytest.raises(CheckpointError, match=r"manifest.json is damaged .*; .*networks.bin is missing"):
        latest_agent_checkpoint(folder)
    assert "never finished" in check_manifest(tmp_path)


def test_the_agent_kind_is_recorded_and_checked(tmp_path):
    folder = tmp_path / "agent"
    save_agent_checkpoint(writer("one"), folder, agent="PETS")
    assert latest_agent_checkpoint(folder, agent="PETS") == folder
    with pytest.raises(CheckpointError, match="holds a PETS agent, not a SAC agent"):
        latest_agent_checkpoint(folder, agent="SAC")

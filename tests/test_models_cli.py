"""Model management and offline behaviour as a user meets them: `models` listing, `models fetch`
without network, `models check`, the fetch layout demucs loads, and `run` with no weights.
Random-weight models here test plumbing only: their stems mean nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from adaptive_argm.config import STEM_NAMES
from adaptive_argm.core import audio, models, separate
from adaptive_argm.cli import app

from conftest import OFFLINE_PROBE, SR, synthetic_stems, tiny_model_repo


def invoke(*args):
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, time.perf_counter() - t0


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_models_json_lists_every_known_model_as_missing_when_nothing_is_here(offline):
    result, _ = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [m["name"] for m in listed] == list(models.KNOWN_NAMES)
    for m in listed:
        assert m["where"] == "missing" and m["path"] is None
        assert {"drums", "bass", "other", "vocals"} <= set(m["stems"]) and m["download_mb"] > 0


def test_models_lists_weights_in_model_repo_and_in_the_fetch_folder(offline, tmp_path):
    repo = tiny_model_repo(tmp_path / "repo", name="htdemucs")
    result, _ = invoke("models", "--json", "--model-repo", repo)
    where = {m["name"]: (m["where"], m["path"]) for m in json.loads(result.stdout)}
    assert where["htdemucs"] == ("model-repo", str(repo))
    assert where["mdx"] == ("missing", None)
    # the folder `models fetch` fills by default is searched without --model-repo
    tiny_model_repo(tmp_path / "fetched", name="mdx")
    assert models.locate("mdx", probe_network=False).where == "model-repo"
    sep, notice = separate.resolve(separate.SeparatorOptions("auto", model="mdx"))
    assert isinstance(sep, separate.DemucsSeparator) and notice is None


def test_models_table_says_where_to_get_weights_when_none_are_here(offline):
    result, _ = invoke("models")
    assert result.exit_code == 0
    assert "htdemucs" in result.stdout and "missing" in result.stdout
    assert "models fetch" in result.stderr


def test_models_fetch_offline_fails_fast_with_one_line_saying_how_to_bring_files_by_hand(offline, tmp_path):
    to = tmp_path / "weights"
    result, elapsed_s = invoke("models", "fetch", "htdemucs", "--to", to)
    assert result.exit_code == 1
    assert elapsed_s < 5  # the regression this guards against is demucs' own 25 s retry loop
    line = one_line(result.stderr)
    assert "no network" in line
    assert "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/" in line and "955717e8" in line
    assert "htdemucs.yaml" in line and f"--model-repo {to}" in line
    assert not to.exists()  # nothing half-done left behind


def test_models_fetch_of_a_name_demucs_does_not_know_says_so_not_how_to_download_it(offline, tmp_path):
    result, _ = invoke("models", "fetch", "htdemuc", "--to", tmp_path / "weights")
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert "unknown Demucs model 'htdemuc'" in line and "htdemucs" in line and "no network" not in line
    assert not (tmp_path / "weights").exists()


def test_models_check_accepts_a_good_folder_and_rejects_weights_without_their_yaml(tmp_path):
    good = tiny_model_repo(tmp_path / "good", name="tiny")
    result, _ = invoke("models", "check", good)
    assert result.exit_code == 0, result.output
    assert "tiny" in result.stdout
    broken = tmp_path / "broken"
    broken.mkdir()
    (good / "0a1b2c3d.th").rename(broken / "0a1b2c3d.th")
    result, _ = invoke("models", "check", broken)
    assert result.exit_code == 1
    assert "yaml" in result.stdout.lower() and "0a1b2c3d" in result.stdout
    assert "cannot be used as --model-repo" in one_line(result.stderr)
    result, _ = invoke("models", "check", good, "--name", "tiny")  # the .th it names is gone now
    assert result.exit_code == 1 and "names model 0a1b2c3d" in result.stdout


def test_models_check_names_the_layouts_demucs_cannot_read(tmp_path):
    # a downloaded checkpoint without its bag file, weights in a subfolder, Hugging Face files
    (tmp_path / "955717e8-8726e21a.th").write_bytes(b"not read by check")
    (tmp_path / "htdemucs").mkdir()
    (tmp_path / "htdemucs" / "5c90dfd2-34c22ccb.th").write_bytes(b"")
    (tmp_path / "955717e8.safetensors").write_bytes(b"")
    problems = models.check_repo(tmp_path)
    assert any("htdemucs.yaml" in p and "demucs' package" in p for p in problems)  # where to copy it from
    assert any("subfolder" in p and "flat" in p for p in problems)
    assert any("safetensors" in p for p in problems)


def test_network_probe_answers_for_a_listening_port_and_gives_up_on_a_stalled_lookup(monkeypatch):
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as server:
        monkeypatch.setenv("ADAPTIVE_ARGM_NETWORK_PROBE", f"127.0.0.1:{server.getsockname()[1]}")
        assert models.network_available()
    release = threading.Event()

    def stalled(*args, **kwargs):  # a resolver that never answers: the socket timeout does not apply
        release.wait(30)
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", stalled)
    t0 = time.perf_counter()
    try:
        assert not models.network_available(timeout_s=0.5)
        assert time.perf_counter() - t0 < 5
    finally:
        release.set()


def test_layouts_read_without_importing_torch_match_demucs_and_torch(monkeypatch, tmp_path):
    import torch
    from demucs.hf import hf_repo_name
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    assert models._remote_root() == REMOTE_ROOT
    assert models._legacy_files() == _parse_remote_files(REMOTE_ROOT / "files.txt")
    assert [models._hf_repo_name(n) for n in models.KNOWN_NAMES] == [hf_repo_name(n) for n in models.KNOWN_NAMES]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    expected = Path(torch.hub.get_dir())
    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh CLI process, before anything loads torch
    assert models._torch_hub_dir() == expected


def _tiny_bag(n: int = 2):
    import torch
    from demucs.apply import BagOfModels
    from demucs.hdemucs import HDemucs

    torch.manual_seed(0)
    members = [HDemucs(channels=4, sources=list(STEM_NAMES)) for _ in range(n)]
    return BagOfModels(members, weights=[[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]][:n])


def test_fetch_layout_is_loaded_by_demucs_from_the_folder(tmp_path):
    """`fetch` = download + `save_bag`; the layout half is testable without network."""
    from demucs.pretrained import get_model

    bag = _tiny_bag()
    written = models.save_bag(bag, "tinybag", tmp_path)
    assert written[0] == tmp_path / "tinybag.yaml" and all(p.is_file() for p in written)
    assert models.check_repo(tmp_path) == [] and models.repo_models(tmp_path) == ["tinybag"]
    loaded = get_model("tinybag", repo=tmp_path)
    assert len(loaded.models) == 2
    np.testing.assert_allclose(np.array(loaded.weights), np.array(bag.weights))
    for a, b in zip(bag.models, loaded.models):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            np.testing.assert_allclose(va.float().numpy(), vb.float().numpy(), rtol=1e-3, atol=1e-3, err_msg=k)


def test_fetch_layout_of_a_known_bag_keeps_demucs_signatures_and_files_already_there(tmp_path):
    shipped = models._bag_signatures(models._remote_root() / "htdemucs.yaml")
    by_hand = tmp_path / f"{shipped[0]}-8726e21a.th"  # as downloaded by hand: never overwritten
    models.save_model_package(_tiny_bag(1).models[0], by_hand)
    before = by_hand.read_bytes()
    written = models.save_bag(_tiny_bag(1), "htdemucs", tmp_path)
    assert by_hand in written and by_hand.read_bytes() == before
    assert yaml.safe_load((tmp_path / "htdemucs.yaml").read_text())["models"] == shipped
    assert models.check_repo(tmp_path, "htdemucs") == []


@pytest.fixture
def song(tmp_path):
    mix = sum(synthetic_stems(seconds=1.5).values())
    return audio.write(tmp_path / "song.wav", mix, SR)


def test_run_without_weights_or_network_restores_directly_and_says_why(offline, song, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "adaptive_argm", "run", str(song), "-o", str(out)],
                       capture_output=True, text=True, env={**os.environ, **offline}, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["mode_used"] == "direct" and rep["separator"]["name"] == "none"
    notice = rep["separator"]["notice"]
    assert "models fetch" in notice and "--model-repo" in notice and "--stems" in notice
    assert "notice:" in r.stderr and "--model-repo" in r.stderr
    assert (out / "restored.wav").is_file()


@pytest.mark.parametrize("args", [["--separator", "demucs"], ["--mode", "stemwise"]])
def test_run_asking_for_demucs_without_weights_fails_fast_with_one_line(offline, song, tmp_path, args):
    out = tmp_path / "out"
    result, elapsed_s = invoke("run", song, "-o", out, *args)
    assert result.exit_code == 1
    assert elapsed_s < 5
    line = one_line(result.stderr)
    assert line.startswith("error:") and "models fetch" in line and "--model-repo" in line
    assert not (out / "restored.wav").exists()

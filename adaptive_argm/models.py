"""Demucs model management: where a model's weights are, loading them without waiting on a
network that is not there, fetching them into a `--model-repo` folder, and checking a folder.

Lookup order: a local `--model-repo` folder (demucs' own layout: `NAME.yaml` and each
`SIG-*.th` flat in one folder), the Hugging Face cache, the torch hub cache, then a download
through `demucs.pretrained.get_model` only when the network answers. Loading always goes
through demucs' own repository classes, so a folder that works here works with `demucs -n NAME
--repo DIR` too.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml

HF_NAMESPACE = "adefossez"
NETWORK_PROBE = ("huggingface.co", 443)
NETWORK_TIMEOUT_S = 2.0
TEST_MODEL = "demucs_unittest"
"""demucs' tiny random-init HDemucs: loads with no files, separates nothing meaningful."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    stems: tuple[str, ...]
    download_mb: int
    """Approximate download size of all the bag's weights."""
    note: str


FOUR = ("drums", "bass", "other", "vocals")
KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("htdemucs", FOUR, 80, "Hybrid Transformer Demucs v4; the default"),
    KnownModel("htdemucs_ft", FOUR, 320, "htdemucs fine-tuned per source (bag of 4); slower, a little better"),
    KnownModel("htdemucs_6s", FOUR + ("guitar", "piano"), 55, "6 sources; piano is weak"),
    KnownModel("hdemucs_mmi", FOUR, 85, "Hybrid Demucs v3 retrained on MusDB + 800 songs"),
    KnownModel("mdx", FOUR, 330, "the method's model: bag of 4 trained on MusDB HQ only"),
    KnownModel("mdx_extra", FOUR, 335, "bag of 4 with extra training data"),
    KnownModel("mdx_q", FOUR, 100, "quantized mdx (needs `diffq`)"),
    KnownModel("mdx_extra_q", FOUR, 100, "quantized mdx_extra (needs `diffq`)"),
)


class ModelUnavailable(Exception):
    """No weights for the model can be had from here; the message says how to get them."""


def advice(name: str) -> str:
    return (f"get the weights with `adaptive-argm models fetch {name}` on a machine with network, "
            f"point --model-repo at a folder holding {name}.yaml and its SIG-*.th files, "
            f"or give stems you already have with --stems DIR")


def network_available(timeout_s: float = NETWORK_TIMEOUT_S) -> bool:
    """True when the model hosts answer; decided within `timeout_s`, never by demucs' own
    download retries (which take about 25 s to give up)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host, port = NETWORK_PROBE
    if os.environ.get("ADAPTIVE_ARGM_NETWORK_PROBE"):  # host:port, e.g. a closed local port in tests
        host, _, p = os.environ["ADAPTIVE_ARGM_NETWORK_PROBE"].rpartition(":")
        port = int(p)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _remote_root() -> Path:
    from demucs.pretrained import REMOTE_ROOT

    return REMOTE_ROOT


def _bag_signatures(yaml_path: Path) -> list[str]:
    with open(yaml_path, encoding="utf-8") as f:
        bag = yaml.safe_load(f)
    if not isinstance(bag, dict) or not isinstance(bag.get("models"), list):
        raise ValueError(f"{yaml_path.name} has no 'models' list")
    return [str(sig) for sig in bag["models"]]


def _hf_repo_id(name: str) -> str:
    from demucs.hf import hf_repo_name

    return f"{HF_NAMESPACE}/{hf_repo_name(name)}"


def _hf_cached_files(name: str) -> tuple[Path, list[Path]] | None:
    """The bag YAML and each model's safetensors in the Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    repo_id = _hf_repo_id(name)
    found = try_to_load_from_cache(repo_id, f"{name}.yaml")
    if not isinstance(found, str):
        return None
    files = []
    for sig in _bag_signatures(Path(found)):
        f = try_to_load_from_cache(repo_id, f"{sig}.safetensors")
        if not isinstance(f, str):
            return None
        files.append(Path(f))
    return Path(found), files


def _torch_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _torch_cached(name: str) -> bool:
    """All of a bag's `.th` files sit in the torch hub cache (where demucs' legacy download
    puts them), so demucs can load them with no network."""
    yaml_path = _remote_root() / f"{name}.yaml"
    ckpt = _torch_checkpoints()
    if not yaml_path.is_file() or not ckpt.is_dir():
        return False
    return all(any(ckpt.glob(f"{sig}-*.th")) or (ckpt / f"{sig}.th").is_file()
               for sig in _bag_signatures(yaml_path))


def check_repo(folder: str | Path, name: str | None = None) -> list[str]:
    """Problems that stop `get_model(NAME, repo=folder)` from working; empty when it will.

    With `name`, checks that model; without, every `*.yaml` in the folder, and reports `.th`
    files that no YAML names (the usual mistake: copying weights without their bag file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    problems = []
    weights = {p.stem.rsplit("-", 1)[0]: p for p in folder.glob("*.th")}
    yamls = [folder / f"{name}.yaml"] if name else sorted(folder.glob("*.yaml"))
    if not yamls:
        problems.append(f"no NAME.yaml bag file in {folder}"
                        + (f" (found {len(weights)} .th file(s) without one)" if weights else ""))
    named: set[str] = set()
    for y in yamls:
        if not y.is_file():
            problems.append(f"{y.name} is missing from {folder}")
            continue
        try:
            sigs = _bag_signatures(y)
        except (ValueError, yaml.YAMLError) as exc:
            problems.append(f"{y.name}: {exc}")
            continue
        named.update(sigs)
        problems += [f"{y.name} names model {sig} but no {sig}-*.th is in {folder}"
                     for sig in sigs if sig not in weights]
    if not name:
        problems += [f"{p.name} is not named by any .yaml bag file" for sig, p in sorted(weights.items())
                     if sig not in named]
    return problems


@dataclass(frozen=True)
class ModelLocation:
    name: str
    where: str
    """`builtin`, `model-repo`, `hf-cache`, `torch-cache`, `download` or `missing`."""
    path: str | None = None


def locate(name: str, model_repo: str | Path | None = None, *, probe_network: bool = True) -> ModelLocation:
    """Where `name`'s weights would be loaded from, without loading them."""
    if name == TEST_MODEL:
        return ModelLocation(name, "builtin")
    if model_repo is not None:
        repo = Path(model_repo).expanduser()
        if (repo / f"{name}.yaml").is_file() or any(repo.glob(f"{name}-*.th")) or (repo / f"{name}.th").is_file():
            return ModelLocation(name, "model-repo", str(repo))
    hf = _hf_cached_files(name)
    if hf is not None:
        return ModelLocation(name, "hf-cache", str(hf[0].parent))
    if _torch_cached(name):
        return ModelLocation(name, "torch-cache", str(_torch_checkpoints()))
    if probe_network and network_available():
        return ModelLocation(name, "download")
    return ModelLocation(name, "missing")


def load(name: str, model_repo: str | Path | None = None):
    """Load a Demucs model (or bag) by name, from the first place that has it.

    Raises `ModelUnavailable` at once (within the network probe's timeout) when nothing local
    has it and the network does not answer.
    """
    from demucs.apply import BagOfModels
    from demucs.pretrained import get_model
    from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo, ModelLoadingError

    loc = locate(name, model_repo)
    try:
        if loc.where in ("builtin", "download"):
            model = get_model(name)
        elif loc.where == "model-repo":
            problems = check_repo(loc.path, name) if (Path(loc.path) / f"{name}.yaml").is_file() else []
            if problems:
                raise ModelUnavailable(f"--model-repo {loc.path}: {problems[0]}")
            model = get_model(name, repo=Path(loc.path))
        elif loc.where == "hf-cache":
            from demucs.hf import load_safetensors_model

            yaml_path, files = _hf_cached_files(name)
            with open(yaml_path, encoding="utf-8") as f:
                bag = yaml.safe_load(f)
            model = BagOfModels([load_safetensors_model(p) for p in files], bag.get("weights"), bag.get("segment"))
        elif loc.where == "torch-cache":
            local = LocalRepo(_torch_checkpoints())
            model = AnyModelRepo(local, BagOnlyRepo(_remote_root(), local)).get_model(name)
        else:
            where = f" (not in --model-repo {model_repo}, nor in any cache)" if model_repo else " (not in any cache)"
            raise ModelUnavailable(f"no weights for Demucs model {name!r} and no network{where}: {advice(name)}")
    except (ModelLoadingError, FileNotFoundError, KeyError) as exc:
        raise ModelUnavailable(f"could not load Demucs model {name!r} from {loc.where}: {exc}") from None
    model.eval()
    return model


def save_model_package(model, path: str | Path) -> Path:
    """Save a demucs model the way demucs' own training does (class, init args, state), so
    `LocalRepo` loads it. Used to lay out weights for `--model-repo` and by the tests."""
    import torch

    args, kwargs = model._init_args_kwargs
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs,
               "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(package, path)
    return path


def fetch(name: str, to: str | Path) -> list[Path]:
    """Download `name` through demucs' own loader and lay it out flat in `to` (NAME.yaml plus
    one SIG.th per model), so `--model-repo to` works offline afterwards."""
    if not network_available():
        raise ModelUnavailable(
            f"no network: cannot download {name!r}. On a machine with network run "
            f"`adaptive-argm models fetch {name} --to DIR` and copy DIR here, or download "
            f"{name}.yaml and its .th files from https://dl.fbaipublicfiles.com/demucs/ "
            f"(see demucs/remote/files.txt) into one folder and pass --model-repo DIR")
    from demucs.apply import BagOfModels
    from demucs.pretrained import get_model

    model = get_model(name)
    to = Path(to).expanduser()
    to.mkdir(parents=True, exist_ok=True)
    models = list(model.models) if isinstance(model, BagOfModels) else [model]
    sigs = [f"{name}_{i}" for i in range(len(models))]
    written = [save_model_package(m, to / f"{sig}.th") for sig, m in zip(sigs, models)]
    bag = {"models": sigs}
    if isinstance(model, BagOfModels):
        bag["weights"] = [list(map(float, w)) for w in model.weights]
        seg = getattr(model.models[0], "segment", None)
        if seg is not None:
            bag["segment"] = float(seg)
    yaml_path = to / f"{name}.yaml"
    yaml_path.write_text(yaml.safe_dump(bag), encoding="utf-8")
    return [yaml_path, *written]

"""Demucs model management: where a model's weights are, loading them without waiting on a
network that is not there, fetching them into a `--model-repo` folder, and checking a folder.

Lookup order: a local `--model-repo` folder (demucs' own layout: `NAME.yaml` and each
`SIG-*.th` flat in one folder), the folder `models fetch` fills by default
(`~/.cache/adaptive-argm/models`, or `$ADAPTIVE_ARGM_MODELS`), the Hugging Face cache, the torch
hub cache, then a download through `demucs.pretrained.get_model` only when the network answers.
Loading always goes through demucs' own repository classes, so a folder that works here works
with `demucs -n NAME --repo DIR` too.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..config import MODEL_REPO, STEM_NAMES, UserError
from . import interrupts, results
from .audio import atomic_path, write_text

HF_NAMESPACE = "adefossez"
NETWORK_PROBE = ("huggingface.co", 443)
NETWORK_TIMEOUT_S = 2.0
TEST_MODEL = "demucs_unittest"
"""demucs' tiny random-init HDemucs: loads with no files, separates nothing meaningful."""
MODEL_DIR_ENV = "ADAPTIVE_ARGM_MODELS"
DEFAULT_MODEL_DIR = "~/.cache/adaptive-argm/models"
"""Where `models fetch` lays weights out by default; searched after `--model-repo`."""
LEGACY_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"


def model_dir() -> Path:
    """The default `models fetch` folder (`$ADAPTIVE_ARGM_MODELS` or ~/.cache/adaptive-argm/models)."""
    return Path(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR).expanduser()


@dataclass(frozen=True)
class KnownModel:
    name: str
    stems: tuple[str, ...]
    download_mb: int
    """Approximate download size of all the bag's weights, in MB (see the note above KNOWN_MODELS)."""
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


# Download sizes are estimates, not checksums of the files: demucs publishes its weights in half
# precision, so size ~ 2 bytes x parameters (htdemucs 41.4 M -> about 80 MB; each Hybrid Demucs
# model of the mdx bags 83.6 M -> about 160 MB, which matches the "four 160 MB files" users report
# for mdx_extra); the quantized bags are, per demucs' author, "almost 4 times smaller".
KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("htdemucs", STEM_NAMES, 80, "Hybrid Transformer Demucs v4; the default"),
    KnownModel("htdemucs_ft", STEM_NAMES, 320, "htdemucs fine-tuned per source (bag of 4); 4x slower, a little better"),
    KnownModel("htdemucs_6s", STEM_NAMES + ("guitar", "piano"), 55, "6 sources; piano is weak"),
    KnownModel("hdemucs_mmi", STEM_NAMES, 160, "Hybrid Demucs v3 retrained on MusDB + 800 songs"),
    KnownModel("mdx", STEM_NAMES, 600, "the method's model: bag of 4 trained on MusDB HQ only"),
    KnownModel("mdx_extra", STEM_NAMES, 640, "bag of 4 with extra training data"),
    KnownModel("mdx_q", STEM_NAMES, 160, "quantized mdx (needs `diffq`)"),
    KnownModel("mdx_extra_q", STEM_NAMES, 170, "quantized mdx_extra (needs `diffq`)"),
)
KNOWN_NAMES = tuple(m.name for m in KNOWN_MODELS)


class ModelUnavailable(UserError):
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
    return _connects(host, int(port), timeout_s)


def _connects(host: str, port: int, timeout_s: float) -> bool:
    """A TCP connection within `timeout_s`. The attempt runs in a daemon thread because the
    socket timeout does not bound the name lookup, which a broken resolver can stall for long."""
    answered: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                answered.append(True)
        except OSError:
            pass

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(answered)


# The lookups below read demucs' and torch's file layouts without importing torch (about 2 s),
# so listing models and failing without weights stay quick; tests check them against the originals.

def _remote_root() -> Path:
    """`demucs.pretrained.REMOTE_ROOT`: the bag files and URL list shipped with demucs."""
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("demucs is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "remote"


def _hf_repo_name(name: str) -> str:
    """`demucs.hf.hf_repo_name`: htdemucs -> HTDemucs, htdemucs_ft -> HTDemucs-ft, mdx -> Demucs-mdx."""
    if name == "htdemucs":
        return "HTDemucs"
    if name.startswith("htdemucs_"):
        return "HTDemucs-" + name[len("htdemucs_"):]
    return "Demucs-" + name


def _legacy_files() -> dict[str, str]:
    """`demucs.pretrained._parse_remote_files(files.txt)`: signature -> download URL."""
    root, urls = "", {}
    for line in (_remote_root() / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        else:
            urls[line.split("-", 1)[0]] = LEGACY_ROOT_URL + root + line
    return urls


def _torch_hub_dir() -> Path:
    """`torch.hub.get_dir()`, read from the environment as torch does when torch is not loaded
    (nothing can have called `torch.hub.set_dir` then)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub"


def _bag_signatures(yaml_path: Path) -> list[str]:
    with open(yaml_path, encoding="utf-8") as f:
        bag = yaml.safe_load(f)
    if not isinstance(bag, dict) or not isinstance(bag.get("models"), list):
        raise ValueError(f"{yaml_path.name} has no 'models' list")
    return [str(sig) for sig in bag["models"]]


def _hf_repo_id(name: str) -> str:
    return f"{HF_NAMESPACE}/{_hf_repo_name(name)}"


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
    return _torch_hub_dir() / "checkpoints"


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
            problems.append(f"{y.name} is missing from {folder}" + _shipped_yaml_hint(y.stem))
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
        problems += [f"{p.name} is not named by any .yaml bag file" + _shipped_yaml_hint(_bag_naming(sig))
                     for sig, p in sorted(weights.items()) if sig not in named]
    problems += _layout_mistakes(folder)
    return problems


def _shipped_bags() -> dict[str, list[str]]:
    """demucs' own bag files (shipped in its package): name -> signatures."""
    try:
        return {y.stem: _bag_signatures(y) for y in sorted(_remote_root().glob("*.yaml"))}
    except (ImportError, OSError, ValueError, yaml.YAMLError):
        return {}


def _bag_naming(sig: str) -> str | None:
    return next((name for name, sigs in _shipped_bags().items() if sig in sigs and name in KNOWN_NAMES), None)


def _shipped_yaml_hint(name: str | None) -> str:
    if not name or name not in _shipped_bags():
        return ""
    return f" (copy it from demucs' package: {_remote_root() / f'{name}.yaml'})"


def _layout_mistakes(folder: Path) -> list[str]:
    """The two layouts users try that demucs' LocalRepo cannot read."""
    problems = [f"{p.name}: a Hugging Face safetensors file; --model-repo needs demucs' .th packages "
                f"(lay them out with `adaptive-argm models fetch NAME --to {folder}`)"
                for p in sorted(folder.glob("*.safetensors"))]
    problems += [f"{sub.name}/ holds model files: demucs needs NAME.yaml and SIG-*.th flat in {folder}, "
                 f"not in a subfolder" for sub in sorted(folder.iterdir())
                 if sub.is_dir() and (any(sub.glob("*.th")) or any(sub.glob("*.yaml")))]
    return problems


def repo_models(folder: str | Path) -> list[str]:
    """Model names a `--model-repo` folder offers (its bag files)."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


@dataclass(frozen=True)
class ModelLocation:
    name: str
    where: str
    """`builtin`, `model-repo`, `hf-cache`, `torch-cache`, `download` or `missing`."""
    path: str | None = None


def _in_folder(name: str, folder: Path) -> bool:
    return folder.is_dir() and ((folder / f"{name}.yaml").is_file() or any(folder.glob(f"{name}-*.th"))
                                or (folder / f"{name}.th").is_file())


def locate(name: str, model_repo: str | Path | None = None, *, probe_network: bool = True) -> ModelLocation:
    """Where `name`'s weights would be loaded from, without loading them."""
    if name == TEST_MODEL:
        return ModelLocation(name, "builtin")
    # The fetch folder counts as a --model-repo the user did not have to name.
    for folder in ([Path(model_repo).expanduser()] if model_repo is not None else []) + [model_dir()]:
        if _in_folder(name, folder):
            return ModelLocation(name, "model-repo", str(folder))
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
                raise ModelUnavailable(MODEL_REPO, f" {loc.path}: {problems[0]}")
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
            where = (" (not in ", MODEL_REPO, f" {model_repo}, nor in any cache)") if model_repo else (
                " (not in any cache)",)
            raise ModelUnavailable(f"no weights for Demucs model {name!r} and no network", *where, f": {advice(name)}")
    except (ModelLoadingError, FileNotFoundError, KeyError) as exc:
        raise ModelUnavailable(f"could not load Demucs model {name!r} from {loc.where}: {exc}") from None
    model.eval()
    return model


def save_model_package(model, path: str | Path, *, half: bool = False) -> Path:
    """Save a demucs model the way demucs' own training does (class, init args, state), so
    `LocalRepo` loads it. Used to lay out weights for `--model-repo` and by the tests. `half`
    stores the state in half precision, as demucs publishes its weights (half the size, no
    audible change). Written to a temporary file and renamed, so a folder never holds half a model."""
    import torch

    args, kwargs = model._init_args_kwargs
    dtype = torch.half if half else None
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs,
               "state": {k: v.detach().to(device="cpu", dtype=dtype if v.is_floating_point() else None)
                         for k, v in model.state_dict().items()}}
    path = Path(path)
    with atomic_path(path, suffix=".tmp") as tmp:
        torch.save(package, tmp)
    return path


def legacy_urls(name: str) -> list[str]:
    """Direct download URLs of a named bag's `.th` files (demucs' legacy host), in bag order;
    empty when demucs ships no bag file of that name."""
    yaml_path = _remote_root() / f"{name}.yaml"
    if not yaml_path.is_file():
        return []
    urls = _legacy_files()
    return [urls[sig] for sig in _bag_signatures(yaml_path) if sig in urls]


def by_hand(name: str, to: str | Path | None = None) -> str:
    """One line: how to bring `name`'s weights onto a machine with no network."""
    to = Path(to).expanduser() if to is not None else model_dir()
    use = ("it is searched automatically" if to == model_dir() else f"then pass --model-repo {to}")
    urls = legacy_urls(name)
    if not urls:
        return (f"on a machine with network run `adaptive-argm models fetch {name} --to DIR` and copy DIR "
                f"to {to} ({use}), or give stems you already have with --stems DIR")
    roots = sorted({u.rsplit("/", 1)[0] + "/" for u in urls})
    files = ", ".join(u.rsplit("/", 1)[1] for u in urls)
    return (f"on a machine with network run `adaptive-argm models fetch {name} --to DIR` and copy DIR to {to}, "
            f"or download {files} from {' and '.join(roots)} and copy {name}.yaml from "
            f"{_remote_root()}, all flat into {to} ({use}; verify with `adaptive-argm models check {to}`)")


def save_bag(model, name: str, to: str | Path) -> list[Path]:
    """Lay a loaded model (or bag) out flat in `to` so `get_model(name, repo=to)` loads it:
    one `SIG.th` per model and `NAME.yaml` naming them (written last, so a folder whose YAML
    is there is complete). Known bags keep demucs' own signatures, weights and segment, so the
    folder can be mixed with files downloaded by hand. Existing weights are never overwritten.
    The files are staged inside `to` and moved into place together (`results.staging`), so an
    interrupt leaves none of them."""
    to = Path(to).expanduser()
    with results.staging(to) as stage:
        staged = _stage_bag(model, name, to, stage)
        with interrupts.signals_held():  # the weights first, the YAML that names them last
            for path in staged[1:] + staged[:1]:
                if path.parent == stage and (path.suffix == ".yaml" or not (to / path.name).exists()):
                    os.replace(path, to / path.name)
            interrupts.note_kept(to)
    return [to / p.name for p in staged]


def _stage_bag(model, name: str, to: Path, stage: Path) -> list[Path]:
    """Write what `save_bag` lays out into `stage` (weights already in `to` are reused, not
    written): the YAML (or the single model) first, then the weights."""
    from demucs.apply import BagOfModels

    if not isinstance(model, BagOfModels):  # a single signature: demucs loads SIG.th directly
        return [save_model_package(model, stage / f"{name}.th", half=True)]
    members = list(model.models)
    shipped = _remote_root() / f"{name}.yaml"
    if shipped.is_file() and len(_bag_signatures(shipped)) == len(members):
        with open(shipped, encoding="utf-8") as f:
            bag = yaml.safe_load(f)
        sigs = [str(s) for s in bag["models"]]
    else:
        sigs = [f"{name}_{i}" for i in range(len(members))]
        bag = {"models": sigs, "weights": [list(map(float, w)) for w in model.weights]}
    written = []
    for sig, member in zip(sigs, members):
        existing = sorted(to.glob(f"{sig}-*.th")) + ([to / f"{sig}.th"] if (to / f"{sig}.th").is_file() else [])
        written.append(existing[0] if existing else save_model_package(member, stage / f"{sig}.th", half=True))
    yaml_path = stage / f"{name}.yaml"
    write_text(yaml_path, yaml.safe_dump(bag))
    return [yaml_path, *written]


def fetch(name: str, to: str | Path | None = None) -> list[Path]:
    """Download `name` through demucs' own loader and lay it out flat in `to` (default
    `model_dir()`), so `--model-repo to` works offline afterwards. Without network it raises
    `ModelUnavailable` within the probe's timeout, saying how to bring the files in by hand."""
    to = Path(to).expanduser() if to is not None else model_dir()
    if (name not in (*KNOWN_NAMES, TEST_MODEL) and not (_remote_root() / f"{name}.yaml").is_file()
            and name not in _legacy_files()):
        raise ValueError(f"unknown Demucs model {name!r}: demucs names no such bag or signature "
                         f"(models: {', '.join(KNOWN_NAMES)})")
    if not network_available():
        raise ModelUnavailable(f"no network: cannot download Demucs model {name!r}; "
                               f"to bring it in by hand: {by_hand(name, to)}")
    from demucs.pretrained import get_model
    from demucs.repo import ModelLoadingError

    try:
        model = get_model(name)
    except (ModelLoadingError, FileNotFoundError, KeyError, OSError) as exc:
        raise ModelUnavailable(f"could not download Demucs model {name!r}: {exc}") from None
    written = save_bag(model, name, to)
    problems = check_repo(to, name) if (to / f"{name}.yaml").is_file() else []
    if problems:
        raise ModelUnavailable(f"fetched {name!r} into {to} but the folder is not usable: {problems[0]}")
    return written


@dataclass(frozen=True)
class ModelStatus:
    """A known model and where it is available from here."""

    model: KnownModel
    location: ModelLocation

    def to_dict(self) -> dict:
        return {**self.model.to_dict(), "where": self.location.where, "path": self.location.path}


def inventory(model_repo: str | Path | None = None, *, probe_network: bool = False) -> list[ModelStatus]:
    """Every known model and where it would load from; instant by default (no network probe)."""
    return [ModelStatus(m, locate(m.name, model_repo, probe_network=probe_network)) for m in KNOWN_MODELS]

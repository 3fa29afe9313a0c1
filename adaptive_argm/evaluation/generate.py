"""Text-to-music generation with MusicGen through Hugging Face transformers (the optional
`[generate]` extra): make the clip for a prompt that has no audio yet.

Weights are looked up in the local Hugging Face cache first (`local_files_only=True`); only
when they are missing is the network probed, quickly (`models.network_available`), so an
offline machine hears at once that generation cannot run instead of waiting on retries.
`generate` accepts a ready model (and processor, or tokenised `inputs`), which is how the
tests drive it with a tiny random-config MusicGen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import Setting, SettingError
from ..core import audio, models
from ..core.separate import pick_device

DEFAULT_MODEL = "facebook/musicgen-small"
DEFAULT_DURATION_S = 5.0
DEFAULT_SEED = 0
DEFAULT_GUIDANCE_SCALE = 3.0
"""Classifier-free guidance, MusicGen's own default."""
DURATION = Setting("duration_s", "duration")
INSTALL_HINT = "pip install 'adaptive-argm[generate]' (transformers)"


class GenerationUnavailable(models.ModelUnavailable):
    """MusicGen cannot run here (no transformers, or no weights and no network); one line."""


@dataclass(frozen=True)
class GenerationSettings:
    model: str = DEFAULT_MODEL
    """A Hugging Face model id or a local folder saved with `save_pretrained`."""
    duration_s: float = DEFAULT_DURATION_S
    seed: int = DEFAULT_SEED
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0 < self.duration_s < math.inf:  # NaN too; the model says how long it can go (`tokens_for`)
            raise SettingError(DURATION, f" must be a positive number of seconds, not {self.duration_s:g}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Generated:
    audio: np.ndarray
    """`(channels, samples)` float32 at `sr` (MusicGen: 32 kHz, mono or stereo)."""
    sr: int
    prompt: str
    settings: GenerationSettings


def _transformers():
    try:
        import transformers
    except ImportError:
        raise GenerationUnavailable(f"MusicGen generation needs transformers: {INSTALL_HINT}") from None
    return transformers


def is_cached(model: str) -> bool:
    """True when the weights are a local folder or already in the Hugging Face cache."""
    if Path(model).is_dir():
        return True
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)


def unavailable_reason(model: str = DEFAULT_MODEL) -> str | None:
    """None when generation can run now (weights cached, or downloadable); else why not, in
    one line. Takes at most the network probe's timeout."""
    try:
        _transformers()
    except GenerationUnavailable as exc:
        return str(exc)
    if is_cached(model) or models.network_available():
        return None
    return (f"MusicGen weights {model!r} are not in the Hugging Face cache and there is no network: "
            f"run once on a machine with network (or copy its cache and set HF_HOME), then rerun")


def load(model: str = DEFAULT_MODEL, device: str = "auto"):
    """`(model, processor)`, from the local cache when there, else downloaded when the network
    answers; `GenerationUnavailable` otherwise."""
    _transformers()
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    def get(local_only: bool):
        m = MusicgenForConditionalGeneration.from_pretrained(model, local_files_only=local_only)
        return m, AutoProcessor.from_pretrained(model, local_files_only=local_only)

    try:
        m, processor = get(True)
    except OSError:
        reason = unavailable_reason(model)
        if reason:
            raise GenerationUnavailable(reason) from None
        m, processor = get(False)
    return m.to(pick_device(device)).eval(), processor


def tokens_for(model, duration_s: float) -> int:
    """Decoder steps for `duration_s` of audio: MusicGen's codebook delay pattern spends
    `num_codebooks - 1` extra steps before the first full frame (256 steps = 5.06 s)."""
    frame_rate = model.config.audio_encoder.frame_rate
    steps = max(1, int(round(duration_s * frame_rate))) + model.config.decoder.num_codebooks - 1
    limit = model.config.decoder.max_position_embeddings
    if steps > limit:
        raise SettingError(DURATION, f" {duration_s:g} s is longer than this MusicGen can make "
                           f"({(limit - model.config.decoder.num_codebooks + 1) / frame_rate:.0f} s)")
    return steps


def generate(prompt: str, settings: GenerationSettings = GenerationSettings(), *, model=None,
             processor=None, inputs: dict | None = None) -> Generated:
    """Generate `settings.duration_s` of audio for `prompt`, seeded.

    `model` / `processor`: ready objects (loaded with `load` when None). `inputs`: tokenised
    text (`input_ids`, `attention_mask`) to use instead of running the processor.
    """
    import torch

    if model is None:
        model, loaded_processor = load(settings.model, settings.device)
        processor = processor or loaded_processor
    if inputs is None:
        if processor is None:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(settings.model, local_files_only=True)
        inputs = processor(text=[prompt], padding=True, return_tensors="pt")
    inputs = {k: v.to(model.device) for k, v in dict(inputs).items()}
    sr = int(model.config.audio_encoder.sampling_rate)
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=True, guidance_scale=settings.guidance_scale,
                             max_new_tokens=tokens_for(model, settings.duration_s))
    y = out[0].float().cpu().numpy()
    y = y[:, : int(round(settings.duration_s * sr))]
    return Generated(np.ascontiguousarray(y, dtype=np.float32), sr, prompt, settings)


def write(generated: Generated, path: str | Path) -> Path:
    """The generated clip as a float WAV at MusicGen's own rate (atomic)."""
    return audio.write(path, generated.audio, generated.sr)

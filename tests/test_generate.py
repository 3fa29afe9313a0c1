"""MusicGen generation through transformers, driven by a tiny random-config MusicGen built here
(no download): the clip has the asked length at the model's rate and lands in a WAV file."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_argm.core import audio
from adaptive_argm.evaluation import generate

transformers = pytest.importorskip("transformers")

SR = 32000
UPSAMPLING = [8, 5, 4, 4]
"""MusicGen's EnCodec: 32 kHz / 640 = 50 frames per second."""


@pytest.fixture(scope="module")
def tiny_musicgen():
    import torch
    from transformers import EncodecConfig, MusicgenConfig, MusicgenForConditionalGeneration, T5Config
    from transformers.models.musicgen.configuration_musicgen import MusicgenDecoderConfig

    transformers.logging.set_verbosity_error()  # pad id == codebook size is MusicGen's own layout
    codebook_size = 16
    text = T5Config(vocab_size=50, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    codec = EncodecConfig(sampling_rate=SR, audio_channels=1, codebook_size=codebook_size, codebook_dim=8,
                          hidden_size=8, num_filters=2, num_residual_layers=1, num_lstm_layers=1,
                          upsampling_ratios=UPSAMPLING, target_bandwidths=[2.2])
    decoder = MusicgenDecoderConfig(vocab_size=codebook_size, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, ffn_dim=32, num_codebooks=codec.num_quantizers,
                                    max_position_embeddings=64, pad_token_id=codebook_size,
                                    bos_token_id=codebook_size, decoder_start_token_id=codebook_size)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict())
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():  # EnCodec's codebooks start at zero: every code would decode alike
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
    return model


def tokens():
    import torch

    ids = torch.tensor([[5, 7, 9, 1]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_generated_clip_has_the_asked_duration_at_the_models_rate_and_is_written(tiny_musicgen, tmp_path):
    settings = generate.GenerationSettings(model="tiny", duration_s=0.2, seed=3)
    gen = generate.generate("a tiny test", settings, model=tiny_musicgen, inputs=tokens())
    assert gen.sr == SR
    assert gen.audio.dtype == np.float32 and gen.audio.ndim == 2
    assert gen.audio.shape == (1, int(0.2 * SR))  # mono MusicGen -> one channel
    assert np.all(np.isfinite(gen.audio)) and np.any(gen.audio != 0)
    path = generate.write(gen, tmp_path / "clip.wav")
    y, info = audio.read(path, sr=None)
    assert info.sample_rate == SR and y.shape == gen.audio.shape
    np.testing.assert_allclose(y, gen.audio, atol=1e-6)


def test_same_seed_same_clip_other_seed_other_clip(tiny_musicgen):
    def make(seed):
        s = generate.GenerationSettings(model="tiny", duration_s=0.1, seed=seed)
        return generate.generate("x", s, model=tiny_musicgen, inputs=tokens()).audio

    a, b, c = make(1), make(1), make(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_duration_beyond_the_models_positions_is_refused_in_words(tiny_musicgen):
    s = generate.GenerationSettings(model="tiny", duration_s=10.0)
    with pytest.raises(ValueError, match="longer than this MusicGen can make"):
        generate.generate("x", s, model=tiny_musicgen, inputs=tokens())


def test_uncached_weights_offline_are_reported_at_once(monkeypatch):
    monkeypatch.setenv("ADAPTIVE_ARGM_NETWORK_PROBE", "127.0.0.1:9")
    reason = generate.unavailable_reason("nobody/not-a-cached-musicgen")
    assert reason and "not in the Hugging Face cache" in reason and "no network" in reason
    with pytest.raises(generate.GenerationUnavailable, match="no network"):
        generate.load("nobody/not-a-cached-musicgen")

"""VGGish log-mel front end and WAV reading (the official VGGish input pipeline)."""

import math
import os
import wave
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile
import torch

from avs_lib.data.audio import (
    load_audio_examples,
    load_log_mel_cached,
    log_mel_cache_path,
    mel_matrix,
    periodic_hann,
    read_wav,
    waveform_to_examples,
    write_wav,
)
from avs_lib.data.errors import DataFormatError

RATE = 16000


def tone(seconds: float, rate: int = RATE, noise: float = 0.02) -> np.ndarray:
    """Two tones plus a little noise (so that no band is silent), peak below 0.6."""
    t = np.arange(round(seconds * rate)) / rate
    hiss = np.random.default_rng(0).normal(scale=noise, size=t.size) if noise else 0.0
    return 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t) + hiss


def reference_log_mel_examples(signal: np.ndarray) -> np.ndarray:
    """The VGGish front end written out with loops, independent of avs_lib.data.audio."""
    window = scipy.signal.get_window("hann", 400, fftbins=True)  # periodic Hann
    num_frames = 1 + (len(signal) - 400) // 160
    spectrum = np.empty((num_frames, 257))
    for i in range(num_frames):
        segment = signal[i * 160 : i * 160 + 400] * window
        spectrum[i] = np.abs(np.fft.fft(segment, 512))[:257]

    def mel(hz):
        return 1127.0 * math.log(1.0 + hz / 700.0)

    low, high = mel(125.0), mel(7500.0)
    edges = [low + (high - low) * k / 65 for k in range(66)]
    weights = np.zeros((257, 64))
    for b in range(1, 257):  # bin 0 (DC) stays zero
        m = mel(8000.0 * b / 256)
        for j in range(64):
            rise = (m - edges[j]) / (edges[j + 1] - edges[j])
            fall = (edges[j + 2] - m) / (edges[j + 2] - edges[j + 1])
            weights[b, j] = max(0.0, min(rise, fall))
    log_mel = np.log(spectrum @ weights + 0.01)
    count = num_frames // 96
    return np.stack([log_mel[k * 96 : (k + 1) * 96] for k in range(count)])[:, None]


def write_pcm(path, samples: np.ndarray, rate: int, sample_width: int, channels: int = 1):
    """Write raw PCM with the stdlib wave module (8-bit is unsigned, 16-bit signed)."""
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(sample_width)
        file.setframerate(rate)
        file.writeframes(samples.tobytes())


# --- the log-mel computation ----------------------------------------------------------------


def test_periodic_hann_matches_scipy():
    np.testing.assert_allclose(periodic_hann(400), scipy.signal.get_window("hann", 400), atol=1e-12)


def test_mel_matrix_has_64_peaked_bands_and_zero_dc():
    weights = mel_matrix()
    assert weights.shape == (257, 64)
    assert np.all(weights[0] == 0)
    assert np.all(weights >= 0) and np.all(weights.max(axis=0) <= 1.0)
    assert np.all(weights.max(axis=0) > 0.5)  # every band catches at least one bin near its peak


def test_waveform_to_examples_matches_loop_reference():
    signal = tone(2.5)
    examples = waveform_to_examples(signal, RATE)
    expected = reference_log_mel_examples(signal)
    assert examples.shape == (2, 1, 96, 64) and examples.dtype == torch.float32
    np.testing.assert_allclose(examples.numpy(), expected, atol=1e-4, rtol=0)


def test_five_seconds_give_five_examples():
    assert waveform_to_examples(tone(5.0), RATE).shape == (5, 1, 96, 64)


def test_audio_shorter_than_one_example_gives_no_examples():
    assert waveform_to_examples(tone(0.9), RATE).shape == (0, 1, 96, 64)


def test_two_channel_waveform_is_mixed_to_mono():
    mono = tone(1.0)
    offset = 0.1 * np.sin(np.arange(mono.size))
    stereo = np.stack([mono + offset, mono - offset], axis=1)  # [n, 2], mean = mono
    assert torch.allclose(
        waveform_to_examples(stereo, RATE), waveform_to_examples(mono, RATE), atol=1e-5
    )


# --- reading WAV files ----------------------------------------------------------------------


def test_read_wav_int16_divides_by_32768(tmp_path):
    samples = np.array([-32768, -1, 0, 1, 16384, 32767], dtype=np.int16)
    write_pcm(tmp_path / "a.wav", samples, RATE, sample_width=2)
    waveform, rate = read_wav(tmp_path / "a.wav")
    assert rate == RATE and waveform.dtype == np.float32
    np.testing.assert_array_equal(waveform, samples / 32768.0)


def test_read_wav_8bit_unsigned_centres_on_128(tmp_path):
    samples = np.array([0, 1, 64, 128, 200, 255], dtype=np.uint8)
    write_pcm(tmp_path / "a.wav", samples, 8000, sample_width=1)
    waveform, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000
    np.testing.assert_array_equal(waveform, (samples.astype(np.float64) - 128) / 128)


def test_read_wav_float32_is_kept(tmp_path):
    samples = np.array([-0.75, 0.0, 0.123456, 1.0], dtype=np.float32)
    soundfile.write(tmp_path / "a.wav", samples, RATE, subtype="FLOAT")
    np.testing.assert_array_equal(read_wav(tmp_path / "a.wav")[0], samples)


def test_read_wav_stereo_keeps_channels(tmp_path):
    samples = np.array([[1, -1], [2, -2], [3, -3]], dtype=np.int16)
    write_pcm(tmp_path / "a.wav", samples, RATE, sample_width=2, channels=2)
    waveform, _ = read_wav(tmp_path / "a.wav")
    np.testing.assert_array_equal(waveform, samples / 32768.0)


def test_unreadable_wav_names_file(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF not really a wav file at all")
    with pytest.raises(DataFormatError, match="unreadable audio") as error:
        read_wav(path)
    assert error.value.path == path


def test_missing_wav_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        read_wav(tmp_path / "gone.wav")


# --- examples from a WAV: length rule and padding --------------------------------------------


def test_empty_wav_is_an_error(tmp_path):
    path = tmp_path / "empty.wav"
    write_pcm(path, np.zeros(0, dtype=np.int16), RATE, sample_width=2)
    with pytest.raises(DataFormatError, match=r"no samples, expected at least 4 s") as error:
        load_audio_examples(path)
    assert str(path) in str(error.value)


def test_three_second_wav_is_too_short(tmp_path):
    path = tmp_path / "short.wav"
    write_wav(path, tone(3.0))
    with pytest.raises(DataFormatError, match=r"lasts 3\.000 s, expected at least 4 s") as error:
        load_audio_examples(path)
    assert error.value.path == path


def test_four_second_wav_is_padded_by_repeating_last_example(tmp_path):
    path = tmp_path / "four.wav"
    write_wav(path, tone(4.0))
    examples = load_audio_examples(path)
    assert examples.shape == (5, 1, 96, 64)
    assert torch.equal(examples[4], examples[3])
    assert not torch.equal(examples[3], examples[2])


def test_five_second_wav_is_not_padded(tmp_path):
    path = tmp_path / "five.wav"
    write_wav(path, tone(5.0))
    examples = load_audio_examples(path)
    assert not torch.equal(examples[4], examples[3])
    assert torch.allclose(examples, waveform_to_examples(read_wav(path)[0], RATE))


def test_longer_wav_keeps_first_examples(tmp_path):
    path = tmp_path / "six.wav"
    write_wav(path, tone(6.5))
    examples = load_audio_examples(path)
    assert torch.equal(examples, waveform_to_examples(read_wav(path)[0], RATE)[:5])


def test_stereo_44k_wav_matches_mono_16k_version(tmp_path):
    torch.set_num_threads(1)
    mono_44k = tone(5.0, rate=44100, noise=0)  # noise-free: both files carry the same signal
    offset = 0.05 * np.sin(2 * np.pi * 300 * np.arange(mono_44k.size) / 44100)
    write_wav(
        tmp_path / "stereo.wav", np.stack([mono_44k + offset, mono_44k - offset], axis=1), 44100
    )
    write_wav(tmp_path / "mono.wav", tone(5.0, rate=RATE, noise=0))
    stereo = load_audio_examples(tmp_path / "stereo.wav")
    mono = load_audio_examples(tmp_path / "mono.wav")
    assert stereo.shape == mono.shape == (5, 1, 96, 64)
    # Only the resampler and the int16 rounding differ.
    assert (stereo - mono).abs().mean() < 0.05
    assert torch.corrcoef(torch.stack([stereo.flatten(), mono.flatten()]))[0, 1] > 0.99


def test_8bit_wav_gives_examples(tmp_path):
    path = tmp_path / "u8.wav"
    samples = np.clip(np.round(tone(5.0, rate=8000) * 128 + 128), 0, 255).astype(np.uint8)
    write_pcm(path, samples, 8000, sample_width=1)
    examples = load_audio_examples(path)
    assert examples.shape == (5, 1, 96, 64)
    expected = waveform_to_examples((samples.astype(np.float64) - 128) / 128, 8000)
    assert torch.allclose(examples, expected, atol=1e-5)


# --- writing and caching ---------------------------------------------------------------------


def test_write_wav_writes_int16_pcm_that_reads_back(tmp_path):
    signal = tone(0.5)
    write_wav(tmp_path / "a.wav", signal)
    assert soundfile.info(str(tmp_path / "a.wav")).subtype == "PCM_16"
    waveform, rate = read_wav(tmp_path / "a.wav")
    assert rate == RATE
    assert np.abs(waveform - signal).max() <= 0.5 / 32768 + 1e-9
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary file left


def test_write_wav_refuses_values_outside_unit_range(tmp_path):
    with pytest.raises(ValueError, match=r"within \[-1, 1\]"):
        write_wav(tmp_path / "a.wav", np.array([0.0, 1.5]))
    assert not (tmp_path / "a.wav").exists()


def test_cache_is_written_to_cache_dir_and_reused(tmp_path):
    wav = tmp_path / "clip.wav"
    write_wav(wav, tone(5.0))
    first = load_log_mel_cached(wav, cache_dir=tmp_path / "cache")
    cache = log_mel_cache_path(wav, tmp_path / "cache")
    assert cache.is_file() and torch.equal(first, load_audio_examples(wav))
    marker = np.full((5, 1, 96, 64), 7.0, dtype=np.float32)
    np.save(cache, marker)  # an entry of the same content is trusted, so the marker comes back
    assert torch.equal(load_log_mel_cached(wav, cache_dir=tmp_path / "cache"), torch.from_numpy(marker))


def test_cache_is_reread_when_wav_is_replaced_by_one_with_an_older_mtime(tmp_path):
    wav, cache_dir = tmp_path / "clip.wav", tmp_path / "cache"
    write_wav(wav, tone(5.0))
    old = load_log_mel_cached(wav, cache_dir=cache_dir)
    stamp = wav.stat().st_mtime_ns
    write_wav(wav, 0.5 * tone(5.0, noise=0.05))
    os.utime(wav, ns=(stamp - 10**10, stamp - 10**10))  # as `tar -x` or `cp -p` leave it
    fresh = load_audio_examples(wav)
    assert torch.equal(load_log_mel_cached(wav, cache_dir=cache_dir), fresh)
    assert not torch.equal(fresh, old)


def test_cache_defaults_to_a_folder_outside_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    wav = tmp_path / "data" / "clip.wav"
    wav.parent.mkdir()
    write_wav(wav, tone(5.0))
    load_log_mel_cached(wav)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["clip.wav"]
    assert len(list((tmp_path / "home" / ".cache" / "avs_lib" / "logmel").glob("*.logmel.npy"))) == 1

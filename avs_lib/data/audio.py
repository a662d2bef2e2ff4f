"""VGGish audio front end: WAV -> log-mel examples [n, 1, 96, 64], as the reference VGGish input pipeline
makes them, so the frozen VGGish weights see what they were trained on: 16 kHz mono, 25 ms periodic Hann
windows every 10 ms, a 512-point FFT magnitude, 64 HTK-mel bands between 125 and 7500 Hz, log(mel + 0.01),
and 96 frames (0.96 s) per example."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile
import torch

from avs_lib.atomic import write_atomically
from avs_lib.data.errors import DataFormatError

SAMPLE_RATE = 16000
WINDOW_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
FFT_LENGTH = 512  # next power of two above the window
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01  # keeps log() finite on silence
EXAMPLE_FRAMES = 96  # 0.96 s per VGGish example
CLIP_SECONDS = 5  # an AVSBench clip: one example per second


def hertz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as VGGish uses it."""
    return 1127.0 * np.log1p(np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[257 FFT bins, 64 bands] triangular filters on the mel scale, peak 1, no area normalisation."""
    bin_mels = hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT_LENGTH // 2 + 1))  # [257]
    edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), NUM_MEL_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # [64] each
    rising = (bin_mels[:, None] - lower) / (center - lower)  # [257, 64]
    falling = (upper - bin_mels[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # the DC bin carries no band energy in VGGish
    return weights


def periodic_hann(length: int) -> np.ndarray:
    """Hann window of period ``length`` (not the symmetric one ``np.hanning`` gives)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def log_mel_spectrogram(waveform: np.ndarray) -> np.ndarray:
    """16 kHz mono waveform [n] -> log-mel frames [num_frames, 64] (float64)."""
    if waveform.shape[0] < WINDOW_LENGTH:
        return np.zeros((0, NUM_MEL_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(waveform, WINDOW_LENGTH)[::HOP_LENGTH]
    # frames: [num_frames, 400], a strided view, no copy until the window multiply
    magnitude = np.abs(np.fft.rfft(frames * periodic_hann(WINDOW_LENGTH), n=FFT_LENGTH))  # [F, 257]
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET)  # [F, 64]


def waveform_to_examples(waveform: np.ndarray, sample_rate: int) -> torch.Tensor:
    """Waveform in [-1, 1], [n] or [n, channels], any rate -> float32 [examples, 1, 96, 64]; a last
    partial example is dropped, as VGGish does."""
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1)  # [n, channels] -> [n]
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be [n] or [n, channels], got shape {waveform.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if sample_rate != SAMPLE_RATE and waveform.size > 0:
        waveform = librosa.resample(waveform, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    log_mel = log_mel_spectrogram(waveform)  # [F, 64]
    count = log_mel.shape[0] // EXAMPLE_FRAMES
    examples = log_mel[: count * EXAMPLE_FRAMES].reshape(count, 1, EXAMPLE_FRAMES, NUM_MEL_BANDS)
    # [count*96, 64] -> [count, 1, 96, 64]
    return torch.from_numpy(examples.astype(np.float32))


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 waveform in [-1, 1], [n] or [n, channels]; rate). PCM is read as left-aligned int32
    / 2**31, exactly int16 / 32768 and 8-bit (x - 128) / 128."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WAV file not found: {path}")
    try:
        info = soundfile.info(str(path))
        if info.subtype.startswith("PCM"):
            data, rate = soundfile.read(str(path), dtype="int32")
            waveform = (data.astype(np.float64) / 2.0**31).astype(np.float32)
        else:
            waveform, rate = soundfile.read(str(path), dtype="float32")
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise DataFormatError(path, f"unreadable audio ({error}); expected a PCM or float WAV") from None
    return waveform, rate


MAX_PEAK = 2.0  # a float WAV far beyond [-1, 1] was scaled as integers, not converted


def wav_problem(waveform: np.ndarray) -> str | None:
    """Why a decoded waveform cannot be used as it is, or None (the rule check-data shares)."""
    if waveform.size and not np.all(np.isfinite(waveform)):
        return "the WAV contains NaN or infinite samples, expected finite values in [-1, 1]"
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    if peak > MAX_PEAK:
        return f"peak amplitude {peak:g}, expected samples within [-1, 1] (a float WAV holding integer-scaled samples?)"
    return None


def wav_conversion(path: str | Path) -> str | None:
    """What reading this WAV converts (from its header; None: nothing, or unreadable, which the reader says):
    the VGGish front end's own conversions, done (and announced once per dataset) rather than refused."""
    try:
        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001 -- libsndfile's errors vary by version
        return None
    changes = [f"{info.channels} channels mixed to mono"] if info.channels != 1 else []
    if info.samplerate != SAMPLE_RATE:
        changes.append(f"{info.samplerate} Hz resampled to {SAMPLE_RATE} Hz")
    return ", ".join(changes) or None


def load_audio_examples(wav_path: str | Path) -> torch.Tensor:
    """WAV -> [5, 1, 96, 64], the first 5 examples; a clip of at least 4 s is padded by repeating its
    last example, a shorter one is an error rather than mostly padding."""
    waveform, rate = read_wav(wav_path)
    problem = wav_problem(waveform)
    if problem is not None:
        raise DataFormatError(wav_path, problem)
    duration, minimum = waveform.shape[0] / rate, CLIP_SECONDS - 1
    if waveform.shape[0] == 0:
        raise DataFormatError(wav_path, f"the WAV holds no samples, expected at least {minimum:g} s of audio")
    if duration < minimum:
        raise DataFormatError(wav_path, f"audio lasts {duration:.3f} s, expected at least {minimum:g} s "
                                        f"(for {CLIP_SECONDS} examples)")
    examples = waveform_to_examples(waveform, rate)[:CLIP_SECONDS]  # [n <= 5, 1, 96, 64]
    missing = CLIP_SECONDS - examples.shape[0]
    if missing > 0:
        examples = torch.cat([examples, examples[-1:].expand(missing, -1, -1, -1)])
    return examples.contiguous()


# Bump when the front end's output changes, so that old cache entries are not reused.
CACHE_VERSION = 1


def default_cache_dir() -> Path | None:
    """~/.cache/avs_lib/logmel (outside the dataset, which may be read-only or shared); None where
    HOME is unset, empty or ``/``, which would put the cache at the top of the file system."""
    if not os.environ.get("HOME", "").strip():
        return None
    home = Path.home()
    return None if home == Path("/") else home / ".cache" / "avs_lib" / "logmel"


_FALLBACKS_SAID: set[Path] = set()


def cache_dir_or(cache_dir: str | Path | None, fallback: Path) -> Path | None:
    """``cache_dir`` as given; None (the default cache) where there is a home; else ``fallback``
    (a run's own folder), said once per folder and process."""
    if cache_dir is not None or default_cache_dir() is not None:
        return None if cache_dir is None else Path(cache_dir)
    if fallback not in _FALLBACKS_SAID:
        _FALLBACKS_SAID.add(fallback)
        warnings.warn(f"HOME is unset or empty, so there is no ~/.cache: caching log-mels in {fallback} "
                      "(set data.cache_dir to choose)", stacklevel=2)
    return fallback


def content_key(path: str | Path) -> str:
    """Size and BLAKE2b digest of the file's bytes; not mtimes (``tar -x``, ``cp -p`` keep old ones)."""
    data = Path(path).read_bytes()
    return f"{len(data)}-{hashlib.blake2b(data, digest_size=16).hexdigest()}"


def log_mel_cache_path(wav_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where ``load_log_mel_cached`` keeps a WAV's log-mel, named by the WAV's content."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if folder is None:
        raise ValueError(f"no cache folder for the log-mel of {wav_path}: HOME is unset or empty; "
                         "give cache_dir (data.cache_dir)")
    return folder / f"v{CACHE_VERSION}-{CLIP_SECONDS}s-{content_key(wav_path)}.logmel.npy"


def load_log_mel_cached(wav_path: str | Path, cache_dir: str | Path | None = None) -> torch.Tensor:
    """``load_audio_examples`` computed once per WAV content, kept as ``.npy`` in ``cache_dir``."""
    wav_path = Path(wav_path)
    if not wav_path.is_file():
        raise FileNotFoundError(f"WAV file not found: {wav_path}")
    cache = log_mel_cache_path(wav_path, cache_dir)
    expected_shape = (CLIP_SECONDS, 1, EXAMPLE_FRAMES, NUM_MEL_BANDS)
    if cache.is_file():
        try:
            cached = np.load(cache, allow_pickle=False)
            if cached.shape == expected_shape and cached.dtype == np.float32:
                return torch.from_numpy(cached)
            warnings.warn(f"{cache}: cached shape {cached.shape}, expected {expected_shape}; recomputing",
                          stacklevel=2)
        except (OSError, ValueError) as error:
            warnings.warn(f"{cache}: unreadable cache ({error}); recomputing", stacklevel=2)
    examples = load_audio_examples(wav_path)
    write_atomically(cache, lambda file: np.save(file, examples.numpy()))
    return examples


def write_wav(path: str | Path, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write [n] or [n, channels] floats in [-1, 1] as 16-bit PCM WAV, atomically."""
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim not in (1, 2) or waveform.shape[0] == 0:
        raise ValueError(f"{path}: waveform must be a non-empty [n] or [n, channels], got shape {waveform.shape}")
    if not np.all(np.isfinite(waveform)) or np.abs(waveform).max() > 1.0:
        raise ValueError(f"{path}: waveform values must be finite and within [-1, 1]")
    pcm = np.clip(np.round(waveform * 32768.0), -32768, 32767).astype(np.int16)  # read back as /32768
    write_atomically(path, lambda file: soundfile.write(file, pcm, sample_rate, subtype="PCM_16", format="WAV"))

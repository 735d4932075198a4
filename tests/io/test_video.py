"""Video in, video out: real clips with sound, made with PyAV in the test, stylized by stylize.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, random_photo
from PIL import Image

import fast_style
from fast_style.errors import FastStyleError
from fast_style.io.model_files import open_model

av = pytest.importorskip("av")

AUDIO_CODECS = {"webm": "libopus"}
VIDEO_CODECS = {"webm": "libvpx-vp9"}


def moving_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """A photo panned one pixel per frame: (H, W, 3) uint8 frames."""
    photo = np.asarray(random_photo(width + count, height, seed=seed))
    return [np.ascontiguousarray(photo[:, i:i + width]) for i in range(count)]


def make_clip(path: Path, *, width: int = 65, height: int = 47, frames: int = 24, fps: int = 24,
              audio: bool = True) -> Path:
    """A clip with a sine-tone audio track (AAC, Opus for WebM); odd sizes are encoded 4:4:4."""
    ext = path.suffix.lstrip(".")
    with av.open(str(path), "w") as out:
        video = out.add_stream(VIDEO_CODECS.get(ext, "libx264"), rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        sound = out.add_stream(AUDIO_CODECS.get(ext, "aac"), rate=48000) if audio else None
        if sound is not None:
            sound.layout = "stereo"
        for rgb in moving_frames(width, height, frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            rate, size = 48000, sound.codec_context.frame_size or 1024
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * frames / fps)) / rate)).astype(np.float32)
            for start in range(0, len(tone), size):
                chunk = np.tile(tone[start:start + size][None], (2, 1))
                if not sound.format.is_planar:
                    chunk = chunk.T.reshape(1, -1)
                if sound.format.name.startswith("s16"):
                    chunk = (chunk * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(chunk, format=sound.format.name, layout="stereo")
                frame.sample_rate, frame.pts = rate, start
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def describe(path: Path) -> dict:
    """Frame count, size, average rate, frame times and the audio packets' bytes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        info = {"frames": len(frames), "size": (stream.width, stream.height), "rate": stream.average_rate,
                "times": [t for t, _ in frames], "rgb": [a for _, a in frames]}
    with av.open(str(path)) as container:
        info["audio"] = [bytes(p) for p in container.demux(audio=0) if p.dts is not None] if container.streams.audio else []
        info["audio_codec"] = [a.codec_context.name for a in container.streams.audio]
    return info


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "mov"])
def test_a_clip_keeps_its_frames_timing_size_and_sound(tmp_path, model_file, ext):
    clip = make_clip(tmp_path / f"clip.{ext}")
    summary = fast_style.stylize(model_file, clip, batch_size=4)
    assert summary.counts() == (1, 0, 0)
    (written,) = summary.done
    assert written == tmp_path / f"clip_wave.{ext}"
    before, after = describe(clip), describe(written)
    assert after["frames"] == before["frames"] == 24
    assert after["size"] == before["size"] == (65, 47)
    assert after["rate"] == before["rate"] == Fraction(24)
    assert after["times"] == pytest.approx(before["times"], abs=1e-3)
    assert after["audio_codec"] == before["audio_codec"] and after["audio"] == before["audio"]  # copied unchanged
    assert len(after["audio"]) > 10
    # each frame is the network's output for the input frame (up to the codec's rounding)
    net = open_model(model_file).network
    with torch.no_grad():
        expected = net(torch.from_numpy(np.stack(before["rgb"][:3])).permute(0, 3, 1, 2).float() / 255).clamp(0, 1)
    got = torch.from_numpy(np.stack(after["rgb"][:3])).permute(0, 3, 1, 2).float() / 255
    assert (got - expected).abs().mean().item() < 0.03
    assert (got - torch.from_numpy(np.stack(before["rgb"][:3])).permute(0, 3, 1, 2) / 255).abs().mean().item() > 0.05


def test_an_animated_gif_stays_an_animated_gif_with_its_timing(tmp_path, model_file):
    frames = [Image.fromarray(rgb) for rgb in moving_frames(40, 30, 7)]
    durations = [40, 50, 60, 40, 100, 30, 70]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    summary = fast_style.stylize(model_file, tmp_path / "anim.gif")
    (written,) = summary.done
    with Image.open(written) as out:
        assert out.n_frames == 7 and out.size == (40, 30) and out.info.get("loop") == 0
        got = []
        for i in range(out.n_frames):
            out.seek(i)
            got.append(out.info["duration"])
    assert got == durations


def test_a_gif_becomes_a_video_and_a_video_a_gif(tmp_path, model_file):
    frames = [Image.fromarray(rgb) for rgb in moving_frames(40, 30, 6)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=[40, 60] * 3, loop=0)
    as_video = fast_style.stylize(model_file, tmp_path / "anim.gif", format="mp4").done[0]
    info = describe(as_video)
    assert as_video.name == "anim_wave.mp4" and info["frames"] == 6
    assert info["times"] == pytest.approx([0, 0.04, 0.10, 0.14, 0.20, 0.24], abs=1e-3)
    clip = make_clip(tmp_path / "clip.mp4", frames=24, fps=24)
    as_gif = fast_style.stylize(model_file, clip, format="gif").done[0]
    with Image.open(as_gif) as out:
        durations = []
        for i in range(out.n_frames):
            out.seek(i)
            durations.append(out.info["duration"])
    assert len(durations) == 24 and sum(durations) == 1000  # 24 fps in centiseconds: 40s and 50s, 1 s in all


def test_a_folder_may_mix_photos_and_videos(tmp_path, model_file):
    folder = tmp_path / "media"
    folder.mkdir()
    make_clip(folder / "clip.mkv", frames=6)
    random_photo(40, 30, seed=1).save(folder / "photo.jpg")
    summary = fast_style.stylize(model_file, folder, output=str(tmp_path / "out"), format="png", progress=False)
    assert summary.counts() == (2, 0, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mkv", "photo.png"]  # format= per kind
    again = fast_style.stylize(model_file, folder, output=str(tmp_path / "out"), format="png", progress=False)
    assert again.counts() == (0, 2, 0)


@pytest.mark.parametrize("ext, keep", [("mkv", 0.5), ("mkv", 0.9), ("mp4", 0.5), ("webm", 0.6)])  # mkv 0.9: 2 frames lost
def test_a_truncated_clip_fails_with_one_line_and_writes_nothing(tmp_path, model_file, ext, keep):
    clip = make_clip(tmp_path / f"clip.{ext}", frames=48)
    data = clip.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FastStyleError) as info:
        fast_style.stylize(model_file, cut)
    message = str(info.value)
    assert "\n" not in message and str(cut) in message
    assert any(word in message for word in ("truncated", "damaged", "not a readable video")), message
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"clip.{ext}", f"cut.{ext}"]


@pytest.mark.parametrize("option, value, needle", [
    ("crf", 64, "crf=64: must be in 0..63"),
    ("codec", "nonesuch", "codec=nonesuch: not an encoder"),
    ("devices", 2, "stylizes photos only"),
])
def test_bad_video_options_are_one_line(tmp_path, model_file, option, value, needle):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    folder = tmp_path / "f"
    folder.mkdir()
    clip.rename(folder / "clip.mp4")
    with pytest.raises(FastStyleError, match=needle):
        summary = fast_style.stylize(model_file, folder / "clip.mp4", **{option: value})
        assert summary is None  # not reached
    assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4"]


@pytest.mark.slow
def test_stylize_py_on_a_clip_and_sigkill_leaves_no_output(tmp_path, model_file):
    make_clip(tmp_path / "long.mp4", width=160, height=120, frames=240)
    args = [sys.executable, str(REPO / "stylize.py"), f"ckpt={model_file}", "progress=false"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([*args, "input=long.mp4"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(p.name.startswith(".long_wave.") for p in tmp_path.iterdir()):
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        process.kill()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "long_wave.mp4" not in names and any(n.startswith(".long_wave.") for n in names)  # killed mid-write
    make_clip(tmp_path / "short.mp4", frames=8)
    done = subprocess.run([*args, "input=short.mp4"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "done 1, skipped 0, failed 0" in done.stdout, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "short.mp4", "short_wave.mp4"]  # swept
    assert describe(tmp_path / "short_wave.mp4")["frames"] == 8

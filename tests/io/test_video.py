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


# ------------------------------------------------------------------ careless and hostile clips (issue 33 item 6)


def _encode(stream, out, frames) -> None:
    for rgb in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def _video_stream(out, width: int, height: int, codec: str = "libx264"):
    stream = out.add_stream(codec, rate=24)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    return stream


def zero_frames(path: Path) -> Path:
    """A container with a video stream and not one frame in it."""
    with av.open(str(path), "w") as out:
        stream = _video_stream(out, 32, 24)
        out.start_encoding()
        _encode(stream, out, [])
    return path


def audio_only(path: Path) -> Path:
    """Sound and no picture (AAC in MP4)."""
    with av.open(str(path), "w") as out:
        _silence(out, "aac", samples=1024)
    return path


def _silence(out, codec: str, *, samples: int) -> None:
    """One second of stereo silence at 48 kHz through ``codec``, ``samples`` per frame."""
    sound = out.add_stream(codec, rate=48000)
    sound.layout = "stereo"
    for start in range(0, 48000, samples):
        shape = (2, samples) if sound.format.is_planar else (1, 2 * samples)
        dtype = np.float32 if "flt" in sound.format.name else np.int16
        frame = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=sound.format.name, layout="stereo")
        frame.sample_rate, frame.pts = 48000, start
        for packet in sound.encode(frame):
            out.mux(packet)
    for packet in sound.encode():
        out.mux(packet)


def audio_with_cover(path: Path) -> Path:
    """Sound and a cover picture (a PNG attachment, which FFmpeg shows as a one-frame video stream)."""
    import io

    png = io.BytesIO()
    random_photo(40, 30, seed=3).save(png, format="PNG")
    with av.open(str(path), "w") as out:
        out.add_attachment("cover.png", "image/png", png.getvalue())
        _silence(out, "libopus", samples=960)
    return path


def two_video_streams(path: Path) -> Path:
    """Two video streams (32x24 and 48x40, 6 frames each), as a camera's main and preview tracks."""
    with av.open(str(path), "w") as out:
        first, second = _video_stream(out, 32, 24), _video_stream(out, 48, 40)
        _encode(first, out, moving_frames(32, 24, 6))
        _encode(second, out, moving_frames(48, 40, 6, seed=1))
    return path


def gif_declaring(path: Path, width: int, height: int, frames: int = 3) -> Path:
    """A tiny GIF whose header (logical screen) declares ``width`` x ``height``."""
    images = [Image.fromarray(rgb) for rgb in moving_frames(16, 16, frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    data = bytearray(path.read_bytes())
    data[6:10] = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def cut(path: Path, source: Path, keep: float | int) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    return path


def size_change(path: Path) -> Path:
    """An AVI whose stream switches from 32x24 to 64x48 frames after 3 (MPEG-4 part 2 says so in-band)."""
    with av.open(str(path), "w") as out:
        stream = _video_stream(out, 32, 24, "mpeg4")
        _encode(stream, out, moving_frames(32, 24, 3))
        bigger = av.CodecContext.create("mpeg4", "w")
        bigger.width, bigger.height, bigger.pix_fmt = 64, 48, "yuv420p"
        bigger.time_base = stream.codec_context.time_base
        bigger.open()
        frames = [av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                  for rgb in moving_frames(64, 48, 3)]
        for i, frame in enumerate([*frames, None]):
            if frame is not None:
                frame.pts = 3 + i
            for packet in bigger.encode(frame):
                packet.stream = stream
                out.mux(packet)
    return path


def long_gif(path: Path, frames: int = 20) -> Path:
    images = [Image.fromarray(rgb) for rgb in moving_frames(40, 30, frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)
    return path


BAD_CLIPS = {  # name -> (how to make it in a folder, words the one line must hold)
    "zero.mkv": (lambda f: zero_frames(f / "zero.mkv"), ("not a readable video",)),
    "zero.mp4": (lambda f: zero_frames(f / "zero.mp4"), ("has no video stream",)),
    "audio.mp4": (lambda f: audio_only(f / "audio.mp4"), ("has no video stream", "audio")),
    "cover.mkv": (lambda f: audio_with_cover(f / "cover.mkv"), ("has no video stream", "cover picture png")),
    "huge.gif": (lambda f: gif_declaring(f / "huge.gif", 60000, 60000), ("60000x60000 px", "max_pixels=")),
    "big.gif": (lambda f: gif_declaring(f / "big.gif", 10000, 10000), ("10000x10000 px", "max_pixels=")),
    "cut.gif": (lambda f: cut(f / "cut.gif", long_gif(f / ".whole.gif"), 0.5), ("damaged",)),
    "header.gif": (lambda f: cut(f / "header.gif", long_gif(f / ".whole.gif"), 20), ("damaged",)),
    "empty.mp4": (lambda f: cut(f / "empty.mp4", make_clip(f / ".whole.mp4", frames=4), 0), ("not a readable video",)),
    "change.avi": (lambda f: size_change(f / "change.avi"), ("frame 4 is 64x48 px", "32x24")),
}


@pytest.mark.parametrize("name", sorted(BAD_CLIPS))
def test_a_bad_clip_is_one_line_and_leaves_no_output(tmp_path, model_file, monkeypatch, name):
    make, needles = BAD_CLIPS[name]
    path = make(tmp_path)
    if "max_pixels=" in needles:  # refused from the header: not one frame may be decoded
        import fast_style.io.video as video

        monkeypatch.setattr(video, "_decoded", lambda *a, **k: pytest.fail("decoded a clip refused by its header"))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FastStyleError) as info:
        fast_style.stylize(model_file, path, runtime="torch", precision="fp32")
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file


def test_of_several_video_streams_the_first_is_stylized_and_the_others_named(tmp_path, model_file, caplog):
    clip = two_video_streams(tmp_path / "two.mkv")
    (written,) = fast_style.stylize(model_file, clip, runtime="torch", precision="fp32").done
    with av.open(str(written)) as out:
        assert [(s.width, s.height) for s in out.streams.video] == [(32, 24)]
    assert describe(written)["frames"] == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{clip}: has 2 video streams; the first (#0, 32x24) is stylized, #1 (48x40) is left out"]


def test_thousands_of_frames_stream_through_in_batches(tmp_path):
    """1000 frames go through in batches of 4: never more than one batch decoded and not yet written."""
    from fast_style.io.video import map_video

    path = tmp_path / "many.mkv"
    with av.open(str(path), "w") as out:
        stream = _video_stream(out, 16, 16)
        _encode(stream, out, (np.full((16, 16, 3), i % 256, np.uint8) for i in range(1000)))
    decoded, written, gaps = [0], [0], []

    def advance() -> None:
        decoded[0] += 1

    def transform(batch: np.ndarray) -> np.ndarray:
        gaps.append(decoded[0] - written[0])
        written[0] += len(batch)
        return batch

    assert map_video(path, tmp_path / "out.mkv", transform, out_size=(16, 16), batch_size=4, advance=advance) == 1000
    assert max(gaps) == 4 and len(gaps) == 250
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 1000


def test_a_gif_too_long_to_hold_is_refused_with_one_line(tmp_path, model_file, monkeypatch):
    import fast_style.io.gif as gif_output

    monkeypatch.setattr(gif_output, "GIF_MAX_PIXELS", 40 * 30 * 3)  # three frames of 40x30
    fast = {"runtime": "torch", "precision": "fp32", "batch_size": 4}
    gif = long_gif(tmp_path / "long.gif", frames=4)
    clip = make_clip(tmp_path / "clip.mkv", width=40, height=30, frames=4, audio=False)  # its header counts no frames
    for source in (gif, clip):  # refused from the header / when the frame past the limit comes
        with pytest.raises(FastStyleError, match=rf"{source.stem}_wave.gif: a GIF holds every frame until it is "
                                                 r"written, and 4 frames of 40x30 px are above "
                                                 r"GIF_MAX_PIXELS=3600 pixels; write a video instead \(format=mp4\)$"):
            fast_style.stylize(model_file, source, format="gif", **fast)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv", "long.gif"]
    (as_video,) = fast_style.stylize(model_file, gif, format="mp4", **fast).done
    assert describe(as_video)["frames"] == 4
    long_gif(tmp_path / "three.gif", frames=3)
    (three,) = fast_style.stylize(model_file, tmp_path / "three.gif", **fast).done
    assert Image.open(three).n_frames == 3


@pytest.mark.slow
def test_stylize_py_over_a_folder_of_bad_clips_reports_each_and_goes_on(tmp_path, model_file):
    folder = tmp_path / "in"
    folder.mkdir()
    for make, _ in BAD_CLIPS.values():
        make(folder)
    two_video_streams(folder / "two.mkv")
    random_photo(40, 30, seed=1).save(folder / "photo.png")
    (folder / "text.png").write_text("not an image")
    args = [sys.executable, str(REPO / "stylize.py"), f"ckpt={model_file}", "progress=false", "runtime=torch",
            "precision=fp32"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run([*args, "input=in", "output=out"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)  # a single bad input's one error line: test_a_bad_clip_is_one_line_...
    assert run.returncode == 1, run.stderr
    assert f"done 2, skipped 0, failed {len(BAD_CLIPS) + 1}" in run.stdout, run.stdout
    failed = [line for line in run.stderr.splitlines() if line.startswith("failed: ")]
    assert sorted(line.split(": ")[1] for line in failed) == sorted(f"in/{n}" for n in [*BAD_CLIPS, "text.png"])
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png", "two.mkv"]  # nothing partial


def test_a_clip_written_meanwhile_by_another_process_is_kept_without_overwrite(tmp_path):
    from fast_style.io.files import OutputExistsError
    from fast_style.io.video import map_video

    clip = make_clip(tmp_path / "clip.mkv", width=16, height=16, frames=3, audio=False)
    (tmp_path / "out.mkv").write_bytes(b"another process's file")
    with pytest.raises(OutputExistsError, match="another process wrote it meanwhile"):
        map_video(clip, tmp_path / "out.mkv", lambda batch: batch, out_size=(16, 16), overwrite=False)
    assert (tmp_path / "out.mkv").read_bytes() == b"another process's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv", "out.mkv"]
    assert map_video(clip, tmp_path / "out.mkv", lambda batch: batch, out_size=(16, 16)) == 3  # overwrite: replaced
    assert describe(tmp_path / "out.mkv")["frames"] == 3

import urllib.request

import pytest
from omegaconf import OmegaConf

from fast_style.training import demo
from fast_style.training.styles import StyleImageError, resolve_style_image, sha256_of


def test_named_style_found_in_style_dir_and_verified(tmp_path, style_file):
    target = tmp_path / "styles" / "mine.png"
    target.parent.mkdir()
    target.write_bytes(style_file.read_bytes())
    path = resolve_style_image(name="mine", style_dir=str(target.parent), file="mine.png",
                               url="http://unused.invalid/x", sha256=sha256_of(style_file))
    assert path == target


def test_checksum_mismatch_is_an_error_and_keeps_the_file(tmp_path, style_file):
    original = style_file.read_bytes()
    with pytest.raises(StyleImageError, match="fails its checksum") as info:
        resolve_style_image(name="x", style_dir=str(style_file.parent), file=style_file.name, sha256="0" * 64)
    assert "style.image=" in str(info.value)
    assert style_file.read_bytes() == original


def _no_network(*args, **kwargs):
    raise OSError("network is unreachable")


def test_missing_file_without_network_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(StyleImageError) as info:
        resolve_style_image(name="starry_night", style_dir=str(tmp_path), file="starry_night.jpg",
                            url="https://example.invalid/starry_night.jpg", sha256="ab" * 32)
    message = str(info.value)
    assert "could not be downloaded" in message and "style.image=" in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


class _FakeResponse:
    def __init__(self, payload):
        self.payload, self.headers = payload, {"Content-Length": str(len(payload))}

    def read(self, n):
        chunk, self.payload = self.payload[:n], self.payload[n:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_is_verified_before_it_lands(tmp_path, style_file, monkeypatch):
    payload = style_file.read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(payload))
    path = resolve_style_image(name="s", style_dir=str(tmp_path / "dl"), file="s.png", url="http://x/s.png",
                               sha256=sha256_of(style_file))
    assert path.read_bytes() == payload
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(b"tampered"))
    with pytest.raises(StyleImageError, match="does not match its sha256"):
        resolve_style_image(name="t", style_dir=str(tmp_path / "dl"), file="t.png", url="http://x/t.png",
                            sha256=sha256_of(style_file))
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["s.png"]  # no t.png, no partial file


def test_explicit_image_path(tmp_path, style_file):
    assert resolve_style_image(name="any", style_dir=str(tmp_path), image=str(style_file)) == style_file
    with pytest.raises(StyleImageError, match="no such file"):
        resolve_style_image(name="any", style_dir=str(tmp_path), image=str(tmp_path / "nope.jpg"))


def test_procedural_style_is_drawn_once(tmp_path, monkeypatch):
    path = resolve_style_image(name="demo_swirls", style_dir=str(tmp_path), procedural="swirls")
    assert path.is_file() and path.stat().st_size > 10_000
    drawn = path.read_bytes()

    def draw_again(**kwargs):
        raise AssertionError(f"style image drawn a second time: {kwargs}")

    monkeypatch.setattr(demo, "draw_style_image", draw_again)
    again = resolve_style_image(name="demo_swirls", style_dir=str(tmp_path), procedural="swirls")
    assert again == path and again.read_bytes() == drawn


def test_design_table_checksums_match_shared_paintings(shared_data):
    from helpers import CONFIG_DIR, compose_train

    # Every named style with a checksum, not a hand-kept list that could miss a new one.
    names = sorted(path.stem for path in (CONFIG_DIR / "style").glob("*.yaml")
                   if OmegaConf.load(path).get("sha256"))
    assert {"starry_night", "the_scream", "shipwreck", "great_wave", "composition_vii", "udnie"} <= set(names)
    for name in names:
        style = compose_train([f"style={name}"]).style
        assert sha256_of(shared_data / "styles" / style.file) == style.sha256, name
        found = resolve_style_image(**style, style_dir=str(shared_data / "styles"))
        assert found == shared_data / "styles" / style.file, name

"""Flicker: a style model's temporal warping error on a clip whose motion is known.

The clip is made from one photo x (1, 3, H, W) by a smooth camera move: every step
zooms in by ``zoom`` about the centre and pans by ``pan`` = (x, y) px, the same relative
motion W each step (:class:`fast_style.nn.temporal.Motion`). Frame t is drawn from the
photo directly with the accumulated motion (zoom z^t, shift s_t with s_0 = 0 and
s_{t+1} = z s_t + pan, so that frame t+1 = W(frame t) exactly), then gets its own camera
noise (``noise_std``, :func:`fast_style.nn.temporal.camera_noise`, no brightness change):

    x_t = noise_t(W^t(x)),   t = 0 .. frames - 1

The warping error of a sequence f_0 .. f_{T-1} (N=1, C channels) is the mean absolute
difference between each frame and the previous one moved by W, over the pixels that
stay in view (M: :func:`fast_style.nn.temporal.valid_mask` of W), in 1/255 units:

    E(f) = 255 / (T - 1) * sum_t  sum(M * |f_{t+1} - W(f_t)|) / (C * sum(M))

:func:`flicker` reports E for the stylized frames T(x_t) and for the input frames x_t
(the scale: camera noise plus bilinear resampling), and their ratio. A model whose
output follows the scene has E(stylized) close to E(input); one whose texture jumps
with the noise has a much larger E (Gupta et al. 2017; the ``loss.temporal_weight``
term trains against it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fast_style.nn.temporal import Motion, affine_theta, camera_noise, valid_mask, warp

DEFAULT_FRAMES = 16
DEFAULT_PAN = (0.6, 0.3)  # px per frame (x right, y down)
DEFAULT_ZOOM = 1.004  # per frame: 16 frames zoom in by 6%, so the view stays inside the photo
DEFAULT_NOISE = 2.0 / 255


def known_motion_clip(
    photo: torch.Tensor, *, frames: int = DEFAULT_FRAMES, pan: tuple[float, float] = DEFAULT_PAN,
    zoom: float = DEFAULT_ZOOM, noise_std: float = DEFAULT_NOISE, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frames (T, 3, H, W) in [0, 1], the step's ``theta`` (1, 2, 3), its mask (1, 1, H, W))
    for ``photo`` (1, 3, H, W) or (3, H, W); see the module docstring."""
    x = (photo if photo.dim() == 4 else photo[None]).float()
    size = tuple(x.shape[-2:])
    generator = torch.Generator(device=x.device).manual_seed(seed)
    step = torch.tensor([pan], dtype=torch.float32, device=x.device)
    shift, out = torch.zeros_like(step), []
    for t in range(frames):
        total = Motion(shift, torch.zeros(1, device=x.device), torch.full((1,), zoom ** t, device=x.device))
        moved = warp(x, affine_theta(total, size))
        out.append(camera_noise(moved, generator=generator, noise_std=noise_std, max_brightness=0.0) if noise_std else moved)
        shift = zoom * shift + step
    theta = affine_theta(Motion(step, torch.zeros(1, device=x.device), torch.full((1,), zoom, device=x.device)), size)
    return torch.cat(out), theta, valid_mask(theta, size)


def warping_error(frames: torch.Tensor, theta: torch.Tensor, mask: torch.Tensor) -> float:
    """E(f) of the module docstring for frames (T, C, H, W), in 1/255 units."""
    moved = warp(frames[:-1].float(), theta.expand(frames.shape[0] - 1, 2, 3))
    diff = (frames[1:].float() - moved).abs() * mask
    per_step = diff.sum(dim=(1, 2, 3)) / (frames.shape[1] * mask.sum()).clamp_min(1)
    return float(per_step.mean() * 255)


def flicker(
    transform: Callable[[torch.Tensor], torch.Tensor], photo: torch.Tensor, *, frames: int = DEFAULT_FRAMES,
    batch_size: int = 4, seed: int = 0, **motion,
) -> dict[str, float]:
    """``{"stylized": E(T(x_t)), "input": E(x_t), "ratio": stylized / input}`` on the clip
    made from ``photo``; ``transform`` maps (N, 3, H, W) in [0, 1] to the same (clamped here)."""
    clip, theta, mask = known_motion_clip(photo, frames=frames, seed=seed, **motion)
    with torch.no_grad():
        stylized = torch.cat([transform(clip[i:i + batch_size]).float().clamp(0, 1) for i in range(0, frames, batch_size)])
    stylized_error, input_error = warping_error(stylized, theta, mask), warping_error(clip, theta, mask)
    return {"stylized": stylized_error, "input": input_error,
            "ratio": stylized_error / input_error if input_error > 0 else float("inf")}

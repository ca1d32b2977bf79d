"""A small synthetic RGB-D image, rendered by ray casting: the RGB-D input of the
depth figures (docs/figures/depth_bins.png, docs/figures/depthaware_weights.png).

No RGB-D data ships with the pinned packages, so the project renders its own: a room seen
by a pinhole camera, with every depth known exactly.

Camera coordinates, in metres: x to the right, y down, z forward (the optical axis); the
camera sits at the origin and looks along +z. The pinhole projects a point ``(x, y, z)`` to
the pixel coordinates ``(v, u) = (cy + f*y/z, cx + f*x/z)`` with ``f = FOCAL * width``
pixels, ``cx = width/2`` and ``cy = HORIZON * height`` (the principal point sits above the
image's middle, so the floor fills most of the frame without tilting the camera). Pixel
``(row, col)`` is sampled at its centre, ``(v, u) = (row + 0.5, col + 0.5)``.

- the floor: the plane ``y = FLOOR_Y`` (the camera is ``FLOOR_Y`` metres above it), a
  checkerboard of ``TILE``-metre tiles;
- the back wall: the plane ``z = WALL_Z``;
- ``BOXES``: axis-aligned boxes standing on the floor, each ``(x0, x1, y0, y1, z0, z1)``
  with ``y1 = FLOOR_Y``, and a colour.

``depth`` is the z coordinate of the first surface each pixel's ray hits (what an RGB-D
sensor reports: distance along the optical axis, not along the ray), so a face facing the
camera has one depth, its distance, and the floor's depth at pixel row ``r`` is
``FLOOR_Y * f / (r + 0.5 - cy)``, growing towards the horizon. Colour is Lambertian:
``albedo * (AMBIENT + (1 - AMBIENT) * max(0, n . LIGHT))`` under a directional light, with
the boxes' shadows (a surface point whose path to the light a box blocks gets the ambient
term only). One ray per pixel, no anti-aliasing: every depth is one surface's, never a mix.
"""

from __future__ import annotations

import numpy as np

#: The focal length as a fraction of the image width (a horizontal field of view of about 62°).
FOCAL = 0.7
#: The principal point's row as a fraction of the image height (the horizon's row).
HORIZON = 0.2
#: The floor plane's y (metres below the camera) and the back wall's z (metres in front).
FLOOR_Y = 1.2
WALL_Z = 5.5
#: The floor's checkerboard tile size, metres.
TILE = 0.5
#: Boxes standing on the floor: ``((x0, x1, y0, y1, z0, z1), rgb albedo)``, metres.
BOXES = (
    ((-1.45, -0.55, 0.3, FLOOR_Y, 2.2, 3.0), (0.80, 0.25, 0.20)),  # red, near left
    ((0.25, 1.25, 0.5, FLOOR_Y, 3.4, 4.2), (0.25, 0.40, 0.80)),  # blue, far right
    ((-0.15, 0.45, 0.8, FLOOR_Y, 1.8, 2.3), (0.90, 0.75, 0.25)),  # yellow, nearest, low
)
FLOOR_ALBEDO = ((0.72, 0.68, 0.60), (0.52, 0.48, 0.42))  # the two tiles
WALL_ALBEDO = (0.75, 0.78, 0.72)
#: Unit direction towards the light (up, to the left, from behind the camera) and the
#: ambient share of the shading.
LIGHT = np.array([-0.45, -0.8, -0.4]) / np.linalg.norm([-0.45, -0.8, -0.4])
AMBIENT = 0.3


def intrinsics(height: int, width: int) -> tuple[float, float, float]:
    """``(f, cy, cx)`` in pixels of the camera that renders a ``height x width`` image."""
    return FOCAL * width, HORIZON * height, width / 2


def project(point, height: int, width: int) -> tuple[float, float]:
    """Pixel coordinates ``(v, u)`` of the camera-space point ``(x, y, z)``; the pixel
    holding it is ``(floor(v), floor(u))``."""
    f, cy, cx = intrinsics(height, width)
    x, y, z = point
    return cy + f * y / z, cx + f * x / z


def _box_hits(origin, direction, box):
    """Ray-box (slab) intersection: ``(t_near, axis of the face entered)`` per ray, ``t``
    infinite where the ray misses or the box is behind it."""
    low, high = np.array(box[0::2]), np.array(box[1::2])
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (low - origin) / direction
        t1 = (high - origin) / direction
    # A ray parallel to a slab: inside it, the slab spans every t; outside, none.
    parallel = direction == 0
    inside = (origin >= low) & (origin <= high)
    near = np.where(parallel, np.where(inside, -np.inf, np.inf), np.minimum(t0, t1))
    far = np.where(parallel, np.where(inside, np.inf, -np.inf), np.maximum(t0, t1))
    t_near, t_far = near.max(axis=-1), far.min(axis=-1)
    hit = (t_near <= t_far) & (t_near > 1e-9)
    return np.where(hit, t_near, np.inf), near.argmax(axis=-1)


def rgbd_scene(height: int = 72, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Render the room: ``(rgb [3, H, W] in [0, 1], depth [H, W] in metres)``, float64.

    The same scene at any resolution (the camera's field of view is fixed); deterministic.
    Shapes and names as the ops take them after ``rgb[None]`` and ``depth[None, None]``.
    """
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (height, width)):
        raise ValueError(f"rgbd_scene: height and width must be positive ints, got "
                         f"height={height!r}, width={width!r}")
    f, cy, cx = intrinsics(height, width)
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    rays = np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], axis=-1)  # z = t
    origin = np.zeros(3)

    # Candidate hits, one layer per surface: the wall, the floor, then each box.
    with np.errstate(divide="ignore"):
        floor_t = np.where(rays[..., 1] > 0, FLOOR_Y / rays[..., 1], np.inf)
    hits = [np.full((height, width), WALL_Z), floor_t]
    faces = []
    for box, _ in BOXES:
        t, axis = _box_hits(origin, rays, box)
        hits.append(t)
        faces.append(axis)
    hits = np.stack(hits)
    surface = hits.argmin(axis=0)  # 0 wall, 1 floor, 2 + k box k
    depth = np.take_along_axis(hits, surface[None], axis=0)[0]
    point = rays * depth[..., None]

    normal = np.zeros((height, width, 3))
    albedo = np.zeros((height, width, 3))
    normal[surface == 0] = (0.0, 0.0, -1.0)
    albedo[surface == 0] = WALL_ALBEDO
    floor = surface == 1
    normal[floor] = (0.0, -1.0, 0.0)
    tile = (np.floor(point[..., 0] / TILE) + np.floor(point[..., 2] / TILE)).astype(int) % 2
    albedo[floor] = np.asarray(FLOOR_ALBEDO)[tile[floor]]
    for k, (_, colour) in enumerate(BOXES):
        on_box = surface == 2 + k
        axis = faces[k][on_box]
        n = np.zeros((axis.size, 3))
        n[np.arange(axis.size), axis] = -np.sign(rays[on_box][np.arange(axis.size), axis])
        normal[on_box] = n
        albedo[on_box] = colour

    # Shadows: a ray from each point (nudged off its surface) towards the light.
    lit = np.ones((height, width), dtype=bool)
    start = point + 1e-6 * normal
    for box, _ in BOXES:
        lit &= ~np.isfinite(_box_hits(start, np.broadcast_to(LIGHT, start.shape), box)[0])
    diffuse = np.clip(normal @ LIGHT, 0.0, None) * lit
    rgb = albedo * (AMBIENT + (1.0 - AMBIENT) * diffuse)[..., None]
    return np.clip(rgb, 0.0, 1.0).transpose(2, 0, 1), depth

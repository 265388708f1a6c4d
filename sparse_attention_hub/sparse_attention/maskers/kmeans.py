"""Batched Lloyd k-means in torch: many small, independent clusterings in one computation.

Product quantisation fits one codebook per (batch, KV head, sub-vector); here they are N
groups of n points of dimension d, clustered together on whatever device the points are on
(the GPU in a real run). Every step is a batched matmul or a CPU scatter-add, so the result is
deterministic for a seed on a given device (no GPU scatter-add atomics).

    points (N, n, d) --init: the same C seeded point indices in every group-->
    centroids (N, C, d) --assign / average, ``iterations`` times--> centroids, codes (N, n)
"""

from __future__ import annotations

import torch

#: Distance entries per step of :func:`nearest_centroid` (fp32): bounds its (N, n, C) table.
DISTANCE_CHUNK_ENTRIES = 2**21
#: Point entries per step of :func:`kmeans`'s centroid update (fp32): bounds the fp32 copy of
#: the points (and the one-hot table of the matmul path) to one block of points.
POINT_CHUNK_ENTRIES = 2**21
#: Past the chunk sizes above, a pass over the points takes this many blocks whatever n (so
#: the ops of a fit do not grow with the keys): a block's fp32 temporaries stay a fixed
#: fraction of the points' own size (about 0.6x bf16 keys at PQCache's defaults).
BLOCKS_PER_PASS = 16


def point_block(points: torch.Tensor, first: int, stop: int) -> torch.Tensor:
    """Points [first, stop) of ``points`` (*G, n, d), any strides (a view such as PQCache's
    sub-vectors of the keys), as an fp32 (N, stop - first, d) tensor, N = prod(G)."""
    part = points[..., first:stop, :].float()  # (*G, step, d), a new tensor
    return part.reshape(-1, part.shape[-2], part.shape[-1])


def _step(points: torch.Tensor, per_point: int, entries: int) -> int:
    """Points per block so that one block of ``points`` (*G, n, d) has at most ``entries``
    entries of ``per_point`` each, or n / ``BLOCKS_PER_PASS`` points if more (at least one)."""
    groups = points[..., 0, 0].numel()
    entries = max(entries, points.numel() * per_point // max(1, points.shape[-1] * BLOCKS_PER_PASS))
    return max(1, entries // max(1, groups * per_point))


def nearest_centroid(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (Euclidean) of each point: (N, n) int64 for points
    (N, n, d) (or (*G, n, d), any strides, N = prod(G)) and centroids (N, C, d). Equal
    distances go to the lower centroid index.

    The (N, n, C) distances are made for blocks of points of at most
    ``DISTANCE_CHUNK_ENTRIES`` entries (each point's code depends on that point only)."""
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 does not change the argmin.
    c = centroids.float()
    norms = (c * c).sum(-1).unsqueeze(1)  # (N, 1, C)
    n_groups, n = c.shape[0], points.shape[-2]
    step = _step(points, c.shape[1], DISTANCE_CHUNK_ENTRIES)
    codes = []
    for first in range(0, n, step):
        part = point_block(points, first, first + step)  # (N, step, d)
        distance = torch.baddbmm(norms, part, c.transpose(1, 2), alpha=-2.0)  # (N, step, C)
        codes.append(distance.argmin(-1))
    if len(codes) == 1:
        return codes[0]
    return torch.cat(codes, dim=1) if codes else c.new_zeros((n_groups, 0), dtype=torch.long)


def blocked_cluster_sums(
    points: torch.Tensor, codes: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cluster_sums` of points (*G, n, d) (any strides, any float dtype) with codes
    (N, n), upcast to fp32 one block of ``POINT_CHUNK_ENTRIES`` entries at a time: sums
    (N, C, d) and sizes (N, C, 1) fp32. On the CPU the scatter-adds go into one accumulator in
    point order, so the sums equal one scatter-add of all points bit for bit."""
    n, d = points.shape[-2], points.shape[-1]
    step = _step(points, max(d, count), POINT_CHUNK_ENTRIES)
    sums = sizes = None
    for first in range(0, n, step):
        part, part_codes = point_block(points, first, first + step), codes[:, first : first + step]
        if part.device.type == "cpu" and sums is not None and sizes is not None:
            sums.scatter_add_(1, part_codes.unsqueeze(-1).expand(-1, -1, d), part)
            sizes.squeeze(-1).scatter_add_(1, part_codes, part.new_ones(part_codes.shape))
            continue
        block_sums, block_sizes = cluster_sums(part, part_codes, count)
        if sums is None or sizes is None:
            sums, sizes = block_sums, block_sizes
        else:
            sums += block_sums
            sizes += block_sizes
    assert sums is not None and sizes is not None  # n >= count >= 1 points
    return sums, sizes


def cluster_sums(
    points: torch.Tensor, codes: torch.Tensor, count: int, scatter: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sums (N, C, d) and sizes (N, C, 1) of points (N, n, d) with codes (N, n).

    ``scatter`` None picks by device: on the CPU a scatter-add (deterministic there, and about
    4x faster than the matmul); elsewhere a one-hot matmul, because a GPU scatter-add uses
    atomics whose order, and so whose rounding, changes from run to run.
    """
    n_groups, _, d = points.shape
    if scatter or (scatter is None and points.device.type == "cpu"):
        sums = points.new_zeros(n_groups, count, d)
        sums.scatter_add_(1, codes.unsqueeze(-1).expand(-1, -1, d), points)  # (N, C, d)
        sizes = points.new_zeros(n_groups, count)
        sizes.scatter_add_(1, codes, points.new_ones(codes.shape))  # (N, C)
        return sums, sizes.unsqueeze(-1)
    one_hot = torch.nn.functional.one_hot(codes, count).to(points.dtype)  # (N, n, C)
    return one_hot.transpose(1, 2) @ points, one_hot.sum(1).unsqueeze(-1)


def initial_indices(n: int, count: int, seed: int, device: torch.device) -> torch.Tensor:
    """``count`` distinct point indices in [0, n), drawn from ``seed`` (CPU generator, so the
    draw is the same on every device): (count,) int64."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:count].to(device)


def kmeans(
    points: torch.Tensor, count: int, iterations: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd k-means of each group of ``points`` (N, n, d) into ``count`` clusters; points may
    also be (*G, n, d) with any strides (N = prod(G)), e.g. a view of bf16 keys: they are read
    in fp32 blocks, never copied whole.

    Initial centroids: the points at ``count`` seeded distinct indices, the same indices in
    every group (as the official PQCache workers draw them). Each iteration assigns every point
    to its nearest centroid and moves each centroid to the mean of its points; a centroid with
    no point stays where it is. Stops after ``iterations`` or once no assignment changes.

    Returns:
        centroids (N, count, d) fp32 and codes (N, n) int64, each point's nearest final
        centroid.

    Raises:
        ValueError: fewer than ``count`` points per group, or ``iterations`` < 0.
    """
    n = points.shape[-2]
    if n < count:
        raise ValueError(f"kmeans needs at least count={count} points per group, got {n}")
    if iterations < 0:
        raise ValueError(f"kmeans iterations must be >= 0, got {iterations}")
    start = points[..., initial_indices(n, count, seed, points.device), :].float()
    centroids = start.reshape(-1, count, points.shape[-1])  # (N, C, d)
    codes = nearest_centroid(points, centroids)
    for _ in range(iterations):
        sums, sizes = blocked_cluster_sums(points, codes, count)
        centroids = torch.where(sizes > 0, sums / sizes.clamp_min(1.0), centroids)
        new_codes = nearest_centroid(points, centroids)
        if torch.equal(new_codes, codes):
            break
        codes = new_codes
    return centroids, codes


__all__ = [
    "BLOCKS_PER_PASS",
    "DISTANCE_CHUNK_ENTRIES",
    "POINT_CHUNK_ENTRIES",
    "blocked_cluster_sums",
    "cluster_sums",
    "initial_indices",
    "kmeans",
    "nearest_centroid",
    "point_block",
]

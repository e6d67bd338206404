"""The text-to-motion metrics of Guo et al. 2022 as MoMask reports them (docs/momask.md, "Evaluation"), on numpy
embeddings.

Same definitions as the reference evaluation (Euclidean distances between evaluator embeddings, FID through
scipy's matrix square root, diversity over random pairs), so numbers read like the published tables. Pure
numpy/scipy: no torch, no models."""
import numpy as np
from scipy import linalg
from scipy.spatial.distance import cdist

R_PRECISION_BATCH = 32
TOP_K = 3
DIVERSITY_PAIRS = 300
MULTIMODALITY_PAIRS = 10
CI_Z = 1.96  # 95% confidence interval of the mean over repetitions


def euclidean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) distances between the rows of a (N, D) and b (M, D)."""
    return cdist(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def r_precision_hits(text: np.ndarray, motion: np.ndarray, top_k: int = TOP_K) -> np.ndarray:
    """(top_k,) how many texts of one batch rank their own motion (same row) within the k nearest motions of
    the batch, k = 1..top_k. Ties go to the lower index, as numpy's stable argsort in the reference does."""
    order = np.argsort(euclidean_distances(text, motion), axis=1, kind="stable")
    rank = np.argmax(order == np.arange(len(text))[:, None], axis=1)
    return (rank[:, None] < np.arange(1, top_k + 1)).sum(axis=0)


def r_precision(text: np.ndarray, motion: np.ndarray, batch_size: int = R_PRECISION_BATCH,
                top_k: int = TOP_K) -> np.ndarray:
    """(top_k,) share of texts whose motion is within the top k of its batch; rows are cut into consecutive
    batches of `batch_size` and an incomplete last batch is left out (the reference loader drops it)."""
    batches = len(text) // batch_size
    if batches == 0:
        raise ValueError(f"R-precision needs at least one full batch of {batch_size} pairs, got {len(text)}")
    hits = sum(r_precision_hits(text[i * batch_size:(i + 1) * batch_size],
                                motion[i * batch_size:(i + 1) * batch_size], top_k) for i in range(batches))
    return hits / (batches * batch_size)


def matching_distance(text: np.ndarray, motion: np.ndarray) -> float:
    """MM-Dist: mean distance between each text embedding and its own motion's."""
    return float(np.linalg.norm(np.asarray(text, np.float64) - motion, axis=1).mean())


def gaussian_statistics(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) embeddings, the Gaussian FID compares."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if len(embeddings) < 2:
        raise ValueError(f"FID needs at least 2 embeddings to estimate a covariance, got {len(embeddings)}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)). As in the reference: a singular product is retried with
    eps on the diagonals, and the imaginary residue sqrtm leaves is dropped unless it is large (then the
    statistics are broken and a ValueError says so)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID of Gaussians of different sizes: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {sigma1.shape} vs {sigma2.shape}")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrt(S1 S2) has an imaginary part of {np.abs(covmean.imag).max():.3g}; "
                             "the embeddings' covariances are not valid")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of (N, D) embeddings."""
    return frechet_distance(*gaussian_statistics(real), *gaussian_statistics(generated))


def diversity(embeddings: np.ndarray, pairs: int, rng: np.random.Generator) -> float:
    """Mean distance between `pairs` random pairs: two independent draws of distinct rows, as the reference."""
    if len(embeddings) < pairs:
        raise ValueError(f"diversity over {pairs} pairs needs at least {pairs} embeddings, got {len(embeddings)}")
    first = rng.choice(len(embeddings), pairs, replace=False)
    second = rng.choice(len(embeddings), pairs, replace=False)
    return float(np.linalg.norm(np.asarray(embeddings, np.float64)[first] - embeddings[second], axis=1).mean())


def multimodality(embeddings: np.ndarray, pairs: int, rng: np.random.Generator) -> float:
    """(N, R, D) embeddings of R generations per caption -> mean distance over `pairs` random pairs of
    generations, the same pair indices for every caption (as the reference)."""
    if embeddings.ndim != 3 or embeddings.shape[1] < pairs:
        raise ValueError(f"multimodality over {pairs} pairs needs (captions, >= {pairs} generations, dim) "
                         f"embeddings, got shape {embeddings.shape}")
    first = rng.choice(embeddings.shape[1], pairs, replace=False)
    second = rng.choice(embeddings.shape[1], pairs, replace=False)
    return float(np.linalg.norm(np.asarray(embeddings, np.float64)[:, first] - embeddings[:, second], axis=2).mean())


def mpjpe(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean per-joint position error of (N, J, 3) poses after moving each pose's root joint to the origin
    (MoMask's calculate_mpjpe), in the unit of the input."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    if reference.shape != estimate.shape or reference.ndim != 3:
        raise ValueError(f"MPJPE of poses of different shapes: {reference.shape} vs {estimate.shape}")
    error = (estimate - estimate[:, :1]) - (reference - reference[:, :1])
    return float(np.linalg.norm(error, axis=-1).mean())


def mean_and_interval(values) -> tuple[np.ndarray, np.ndarray]:
    """Mean over repetitions (axis 0) and the half-width of its 95% confidence interval, 1.96 std / sqrt(n)
    with numpy's population std, as the reference reports."""
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=0), CI_Z * values.std(axis=0) / np.sqrt(len(values))

"""How many accounts would tie to an account this strongly by chance: the size-aware test of
synchronised-activity and creation-burst links.

Rarity and popularity weights are per hub: a (merchant, day) hub of 4 accounts weighs the same
in a marketplace of 20k accounts as in one of 10M, although in the larger one an account meets
many more strangers in such hubs, and more accounts are created in each hour. So a pair's
shared hubs are compared with what the two accounts' own activity predicts:

- ``sync``: an account active in ``a_i`` windows at merchant ``m`` meets another account
  active in ``a_j`` there in ``a_i * a_j / W_m`` windows by chance, where ``W_m`` is the
  number of windows from the merchant's first activity to its last (:func:`open_windows`).
  Summed over merchants this is the pair's expected number of shared windows. The accounts
  that could have been tied to an account this way are its merchants' customers. (Tested
  only when ``RingConfig.chance_kinds`` names it: pair by pair a ring's members tie no less
  by chance than strangers do; :func:`core_chance` weighs a ring's co-activity as a whole.)
- ``burst``: two accounts created in the same window share ``k`` merchants. An account active
  at ``d_j`` merchants, choosing them as the marketplace's customers do (in proportion to
  merchants' customer counts ``n_m``), shares ``d_j * s_i / S`` merchants with account ``i``
  by chance (``s_i = sum of n_m over i's merchants``, ``S = sum of n_m``). The accounts that
  could have been tied to it are the others created in the same window.

The Poisson tail of the shared hubs, times the number of accounts that could have been tied,
is the expected number of accounts tied as strongly by chance; a link whose figure exceeds
``RingConfig.link_chance`` (from either end) carries no weight of that kind. Rings are
tested whole by :func:`core_chance`. Everything is
counted from the marketplace itself; nothing is fitted to how a generator plants rings.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import poisson

CHUNK = 500_000  # pairs per row-gather, so memory stays bounded


def _indicator(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    return mat


def _pair_dot(
    left: sp.csr_matrix, right: sp.csr_matrix, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Per pair ``(a[p], b[p])`` the dot product of row ``a[p]`` of ``left`` and row ``b[p]`` of
    ``right``, in chunks (one row gather per chunk, no Python loop over pairs)."""
    out = np.zeros(len(a))
    for start in range(0, len(a), CHUNK):
        sl = slice(start, start + CHUNK)
        out[sl] = np.asarray(left[a[sl]].multiply(right[b[sl]]).sum(axis=1)).ravel()
    return out


def open_windows(hub_merchant: np.ndarray, hub_window: np.ndarray, n_merchants: int) -> np.ndarray:
    """Per merchant, the windows from its first active one to its last: when a visit could
    have fallen. Not the windows it was active in: at a shop only a ring uses, every visit is
    in a ring window, and chance would explain the ring by the ring itself."""
    first = np.full(n_merchants, np.iinfo(np.int64).max)
    last = np.full(n_merchants, np.iinfo(np.int64).min)
    np.minimum.at(first, hub_merchant, hub_window)
    np.maximum.at(last, hub_merchant, hub_window)
    return np.maximum(last - first + 1, 1).astype(np.float64)


def sync_chance(
    inc: sp.csr_matrix, hub_merchant: np.ndarray, hub_window: np.ndarray, usable: np.ndarray,
    a: np.ndarray, b: np.ndarray, shared: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Expected number of accounts tied to ``a`` or ``b`` (the larger) by as many shared
    (merchant, window) hubs as ``shared`` by chance.

    Args:
        inc: accounts x (merchant, window) hubs, binary, every account.
        hub_merchant, hub_window: the merchant and window of each hub.
        tests: how many groups could have been tested (the caller's multiple-testing factor).
        usable: the hubs that make pairs (the same hubs ``shared`` counts).
        a, b: the pairs (account indices into ``inc``'s rows).
        shared: per pair, the usable hubs the two share.
    """
    n_users, n_hubs = inc.shape
    n_merchants = int(hub_merchant.max(initial=-1)) + 1
    inc = (inc @ sp.diags(usable.astype(np.float32))).tocsr()
    inc.eliminate_zeros()
    windows = open_windows(hub_merchant, hub_window, n_merchants)
    to_merchant = _indicator(np.arange(n_hubs), hub_merchant, (n_hubs, n_merchants))
    visits = (inc @ to_merchant).tocsr()  # accounts x merchants: windows active there
    expected = _pair_dot(visits, (visits @ sp.diags(1.0 / windows)).tocsr(), a, b)
    customers = np.asarray((visits > 0).sum(axis=0)).ravel().astype(np.float64)
    met = np.minimum((visits > 0).astype(np.float64) @ customers, n_users)  # could be tied
    tail = poisson.sf(shared - 1, np.maximum(expected, 1e-12))
    return np.asarray(tail * np.maximum(met[a], met[b]))


def burst_chance(
    inc: sp.csr_matrix, hub_merchant: np.ndarray, created: np.ndarray,
    a: np.ndarray, b: np.ndarray, shared: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Expected number of accounts created in the same window as ``a`` (and ``b``) that would
    share as many merchants with it as ``shared`` by chance.

    Args:
        inc: accounts x (creation window, merchant) hubs, binary, every account.
        hub_merchant: the merchant of each hub.
        created: per account, its creation window (-1: unknown).
        a, b: the pairs; shared: per pair, the hubs (merchants, same window) the two share.
    """
    n_hubs = inc.shape[1]
    n_merchants = int(hub_merchant.max(initial=-1)) + 1
    to_merchant = _indicator(np.arange(n_hubs), hub_merchant, (n_hubs, n_merchants))
    at = ((inc @ to_merchant) > 0).astype(np.float64).tocsr()  # accounts x merchants
    customers = np.asarray(at.sum(axis=0)).ravel()
    reach = at @ customers  # s_i
    degree = np.asarray(at.sum(axis=1)).ravel()  # d_i
    total = max(float(customers.sum()), 1.0)
    expected = np.maximum(degree[b] * reach[a], degree[a] * reach[b]) / total
    known = created >= 0
    window_id = np.unique(created[known], return_inverse=True)[1]
    born = np.bincount(window_id)  # accounts created in each window
    cohort = np.zeros(len(created))
    cohort[known] = born[window_id]
    tail = poisson.sf(shared - 1, np.maximum(expected, 1e-12))
    return np.asarray(tail * np.maximum(cohort[a] - 1, 1))


def core_chance(
    cores: list[np.ndarray], inc: sp.csr_matrix, hub_merchant: np.ndarray,
    hub_window: np.ndarray, usable: np.ndarray, tests: float,
) -> np.ndarray:  # fmt: skip
    """Per core, its Poisson tail times ``tests``: the expected number of groups (among
    ``tests`` that could have formed a core) whose members would be active together in as
    many (merchant, window) hubs by chance.

    A core's co-activity is its member pairs' shared windows, ``K``; chance predicts
    ``sum over pairs of a_i * a_j / W_m`` (see :func:`sync_chance`), summed per merchant as
    ``((sum_i a_im) ** 2 - sum_i a_im ** 2) / (2 W_m)``. A ring of fifteen that acts together
    week after week is far beyond chance; three strangers who met twice at a busy shop are not.
    """
    if not cores:
        return np.zeros(0)
    n_users, n_hubs = inc.shape
    n_merchants = int(hub_merchant.max(initial=-1)) + 1
    inc = (inc @ sp.diags(usable.astype(np.float32))).tocsr()
    inc.eliminate_zeros()
    size = np.array([len(c) for c in cores])
    member = _indicator(np.repeat(np.arange(len(cores)), size), np.concatenate(cores),
                        (len(cores), n_users))  # fmt: skip
    present = (member @ inc).tocsr()  # cores x hubs: members active in each
    together = np.asarray(present.multiply(present - present.sign()).sum(axis=1)).ravel() / 2
    windows = open_windows(hub_merchant, hub_window, n_merchants)
    to_merchant = _indicator(np.arange(n_hubs), hub_merchant, (n_hubs, n_merchants))
    visits = (inc @ to_merchant).tocsr()
    per = (member @ visits).tocsr()
    squares = (member @ visits.multiply(visits)).tocsr()
    weight = sp.diags(1.0 / (2 * windows))
    expected = np.asarray(((per.multiply(per) - squares) @ weight).sum(axis=1)).ravel()
    tail = poisson.sf(together - 1, np.maximum(expected, 1e-12))
    return np.asarray(tail * tests)

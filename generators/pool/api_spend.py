"""What a pool has spent on image APIs, per pool key, stored with the pool (`api_spend.json`, written whole), and
the cap a sweep sets on it: a request is refused before anything is sent when it could take the spend past the cap.

One process writes it: the pool actor of the pool's Ray cluster. Spend is recorded as each call's images arrive,
before they are stored, so a stored image is always paid for in the ledger; a call cut off by a crash while in
flight may be charged by the API but not recorded (at most the in-flight calls: max_concurrent_requests x n images
per generator actor).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from generators.errors import BudgetError, PoolError
from generators.pool.keys import PoolKey
from generators.pool.storage import PoolStorage

SPEND_FILE = "api_spend.json"
SPEND_FORMAT = 1
CAP_FLAG = "--max-api-spend-usd (YAML max_api_spend_usd)"
# Costs are sums of prices like 0.016; a cap met exactly must not fail on the last bit of a float.
TOLERANCE_USD = 1e-9


@dataclass
class Reservation:
    """Spend held for one request until its calls' images arrive (recorded) or it ends (the rest released)."""

    key: PoolKey
    price_per_image: float
    remaining_usd: float
    released: bool = field(default=False)


class SpendLedger:
    """The recorded spend per pool key and the in-flight reservations of this process. Thread-safe."""

    def __init__(self, storage: PoolStorage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._loaded = False
        self._cap_usd: float | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._reserved_usd = 0.0

    def _load(self) -> None:
        if self._loaded:
            return
        path = self._storage.path(SPEND_FILE)
        if self._storage.exists(path):
            try:
                payload = json.loads(self._storage.read_bytes(path))
                self._cap_usd = payload.get("cap_usd")
                self._keys = dict(payload["keys"])
            except (ValueError, KeyError, TypeError) as error:
                # Spend that cannot be read cannot be bounded: refuse to spend more rather than start from zero.
                raise PoolError(f"{path} is not a readable spend record ({error!r}); fix or remove it by hand") from None
        self._loaded = True

    def _save(self) -> None:
        payload = {"format": SPEND_FORMAT, "cap_usd": self._cap_usd, "keys": self._keys}
        self._storage.write(self._storage.path(SPEND_FILE), json.dumps(payload, indent=1, sort_keys=True).encode("utf-8"))

    def set_cap(self, cap_usd: float) -> None:
        """The most the pool may have spent in total; kept with the pool so a restarted pool actor keeps it."""
        with self._lock:
            self._load()
            if self._cap_usd != float(cap_usd):
                self._cap_usd = float(cap_usd)
                self._save()

    def spent_usd(self) -> float:
        with self._lock:
            self._load()
            return self._spent()

    def _spent(self) -> float:
        return sum(float(entry["usd"]) for entry in self._keys.values())

    def reserve(self, key: PoolKey, class_index: int, images: int, price_per_image: float) -> Reservation:
        """Holds the cost of `images` images, or raises BudgetError (naming the spend so far, the cost and the flag)
        if the spend recorded, plus what other requests hold, plus this cost would pass the cap."""
        cost = images * price_per_image
        with self._lock:
            self._load()
            if self._cap_usd is None:
                raise BudgetError(
                    f"no API spend cap is set for the pool at {self._storage.root}; a sweep's driver sets it from "
                    f"{CAP_FLAG} before trials start"
                )
            spent = self._spent()
            if spent + self._reserved_usd + cost > self._cap_usd + TOLERANCE_USD:
                held = f", and requests in flight hold {self._reserved_usd:.4f} USD more" if self._reserved_usd else ""
                raise BudgetError(
                    f"image API budget: the pool at {self._storage.root} has spent {spent:.4f} USD so far{held}; this "
                    f"request for {images} images of {key.generator} class {class_index} would cost {cost:.4f} USD "
                    f"({images} x {price_per_image} USD), past the cap of {self._cap_usd} USD; raise {CAP_FLAG} to spend more"
                )
            self._reserved_usd += cost
            return Reservation(key, price_per_image, cost)

    def record(self, reservation: Reservation, images: int, calls: int = 1) -> None:
        """Records `images` images that arrived for a reservation (before they are stored)."""
        cost = images * reservation.price_per_image
        with self._lock:
            self._load()
            entry = self._keys.setdefault(
                reservation.key.folder_name,
                {**reservation.key.to_dict(), "images": 0, "calls": 0, "usd": 0.0, "last_spent_at": None},
            )
            entry["images"] += images
            entry["calls"] += calls
            entry["usd"] = float(entry["usd"]) + cost
            entry["last_spent_at"] = time.time()
            taken = min(cost, reservation.remaining_usd)
            reservation.remaining_usd -= taken
            self._reserved_usd -= taken
            self._save()

    def release(self, reservation: Reservation) -> None:
        """Gives back what a finished request held but did not spend (its failed calls)."""
        with self._lock:
            if not reservation.released:
                self._reserved_usd = max(0.0, self._reserved_usd - reservation.remaining_usd)
                reservation.remaining_usd = 0.0
                reservation.released = True

    def summary(self) -> tuple[float | None, list[dict[str, Any]]]:
        """The cap last set and one row per pool key: generator, settings_hash, dataset, images, calls, usd."""
        with self._lock:
            self._load()
            return self._cap_usd, [dict(entry) for _, entry in sorted(self._keys.items())]

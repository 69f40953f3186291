"""Where every raw dataset comes from, how it is verified, and how it is read.

One registry (``SOURCES``) for all source experiments. Each raw file has its canonical origin
and the sha256 it must have. Files are fetched in one of two ways:

* ``PIPELINE_DATA_MIRROR`` set: read from the mirror (laid out like ``shared/data``); the
  network is never touched, and a missing file is an error.
* unset: downloaded from the canonical origin through the standard loaders
  (``keras.utils.get_file``, ``sklearn.datasets.fetch_california_housing``) into their caches.

Either way the bytes are checked against the recorded sha256 before anything is parsed.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import DataError

MIRROR_ENV = "PIPELINE_DATA_MIRROR"


@dataclass(frozen=True)
class RawFile:
    """One file of a dataset: its place in the mirror, its origin and the hashes we accept."""

    mirror_path: str  # relative to the mirror root (the Keras / scikit-learn cache layout)
    origin: str
    sha256: tuple[str, ...]  # accepted digests (a file may have a canonical and a re-packed form)
    note: str = ""

    @property
    def name(self) -> str:
        return Path(self.mirror_path).name


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def array_sha256(*arrays: np.ndarray) -> str:
    """Hash of array contents (dtype, shape, bytes): stable across pickle/joblib versions."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def mirror_root() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser().resolve() if value else None


def _fix_hint(raw: RawFile, mirror: Path | None) -> str:
    where = f"{mirror / raw.mirror_path}" if mirror else "the Keras cache (~/.keras/datasets)"
    return (
        f"Fix it either way: put the verified file at {where} (a copy of shared/data, checked with "
        f"`sha256sum -c SHA256SUMS`), or unset {MIRROR_ENV} on a machine with network access so "
        f"that it is downloaded from {raw.origin}."
    )


def verify(raw: RawFile, path: Path, mirror: Path | None) -> str:
    """Return the file's sha256, or raise DataError if it is not one of the accepted digests."""
    if not path.is_file():
        raise DataError(
            f"Dataset file {raw.name} is missing: expected it at {path} (sha256 {raw.sha256[0]}). "
            + _fix_hint(raw, mirror)
        )
    actual = sha256_of(path)
    if actual not in raw.sha256:
        raise DataError(
            f"Dataset file {path} has sha256 {actual}, but {raw.name} must have "
            f"{' or '.join(raw.sha256)}; the file is corrupt, truncated or a different release. "
            + _fix_hint(raw, mirror)
        )
    return actual


def keras_cache_dir() -> Path:
    """Where the Keras loaders look for downloaded files (``$KERAS_HOME``, else ``~/.keras``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _link_into_keras_cache(source: Path, raw: RawFile) -> Path:
    """Make a mirror file visible where the Keras loader looks, so it never downloads it."""
    target = keras_cache_dir() / Path(raw.mirror_path).relative_to("keras")
    if target.is_symlink() and target.resolve() == source.resolve():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.link")
    staging.unlink(missing_ok=True)
    staging.symlink_to(source)
    os.replace(staging, target)  # atomic: a loader never sees a half-made entry
    return target


def fetch(raw: RawFile) -> tuple[Path, str]:
    """Local path of a verified raw file, and its sha256."""
    mirror = mirror_root()
    if mirror is not None:
        path = mirror / raw.mirror_path
        digest = verify(raw, path, mirror)
        if raw.mirror_path.startswith("keras/"):
            path = _link_into_keras_cache(path, raw)
        return path, digest
    import keras  # only needed when downloading

    try:
        local = keras.utils.get_file(
            fname=raw.name,
            origin=raw.origin,
            file_hash=raw.sha256[0],
            hash_algorithm="sha256",
            # the mirror copies the Keras cache layout, so the same sub-folder works in both
            cache_subdir=str(Path(raw.mirror_path).parent).removeprefix("keras/"),
        )
    except Exception as error:  # network errors come in many types; all mean the same here
        raise DataError(
            f"Could not download {raw.name} from {raw.origin}: {error}. " + _fix_hint(raw, None)
        ) from error
    path = Path(local)
    return path, verify(raw, path, None)


# --- parsers: raw files -> arrays -------------------------------------------------------------


# The Keras datasets are read by the Keras loaders themselves: fetch() has put the verified
# file where they look, so they find it (hash-checked) and do not download it again.


def _train_test(loaded) -> dict[str, np.ndarray]:
    (x_train, y_train), (x_test, y_test) = loaded
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _load_fashion_mnist(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    import keras

    return _train_test(keras.datasets.fashion_mnist.load_data())


def _load_boston(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    import keras

    return _train_test(keras.datasets.boston_housing.load_data())


def _load_reuters(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    import keras

    # the seed's vocabulary: the 10,000 most frequent words
    return _train_test(keras.datasets.reuters.load_data(num_words=10_000))


def _load_thoracic(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    table = np.loadtxt(paths["ThoraricSurgery.csv"], delimiter=",")
    return {"x": table[:, :17].astype("float32"), "y": table[:, 17].astype("int64")}


def _load_california(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    from sklearn.datasets import fetch_california_housing

    mirror = mirror_root()
    kwargs = {"data_home": str(mirror / "scikit_learn_data"), "download_if_missing": False} if mirror else {}
    cache = kwargs.get("data_home", "~/scikit_learn_data")
    try:
        bunch = fetch_california_housing(**kwargs)
    except Exception as error:  # joblib raises anything on a damaged cache file
        raise DataError(
            f"California housing could not be read from the scikit-learn cache {cache} "
            f"(cal_housing_py3.pkz: {type(error).__name__}: {error}); the file is missing, "
            f"truncated or corrupt. Fix it either way: copy the verified "
            f"shared/data/scikit_learn_data/cal_housing_py3.pkz there, or unset {MIRROR_ENV} "
            f"on a machine with network access so that scikit-learn downloads it."
        ) from error
    return {"x": bunch.data.astype("float64"), "y": bunch.target.astype("float64")}


def read_imdb_archive(path: Path) -> dict[str, np.ndarray]:
    """Review texts, labels and star ratings of aclImdb, read straight from the tarball (no
    extraction). The rating (1-4 negative, 7-10 positive) is the file name's ``_<rating>``."""
    reviews: dict[str, list[tuple[str, str, int, int]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                parts = member.name.split("/")
                # aclImdb/<split>/<pos|neg>/<id>_<rating>.txt ; unsup reviews are skipped
                if len(parts) != 4 or parts[2] not in ("pos", "neg") or not member.isfile():
                    continue
                text = archive.extractfile(member).read().decode("utf-8")
                reviews[parts[1]].append(
                    (member.name, text, int(parts[2] == "pos"), _imdb_rating(path, member.name))
                )
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path} is not a readable gzip tarball of UTF-8 reviews ({error}). Replace it with "
            f"the verified aclImdb_v1.tar.gz (shared/data/keras/datasets) or delete it to "
            f"download it again."
        ) from error
    arrays = {}
    for split, rows in reviews.items():
        rows.sort()  # archive order is not a contract; file names are
        # object, not fixed-width str: that would pad all 25,000 reviews to the longest (2.7 GB)
        arrays[f"text_{split}"] = np.array([text for _, text, *_ in rows], dtype=object)
        arrays[f"y_{split}"] = np.array([label for _, _, label, _ in rows], dtype="int64")
        arrays[f"rating_{split}"] = np.array([rating for *_, rating in rows], dtype="int64")
    return arrays


def _imdb_rating(path: Path, name: str) -> int:
    """The star rating in a review's file name ``<id>_<rating>.txt``."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".txt")
    _, underscore, rating = stem.rpartition("_")
    if not underscore or not rating.isdigit() or not 1 <= int(rating) <= 10:
        raise DataError(
            f"{path}: review {name} is not named <id>_<rating>.txt with a rating of "
            f"1 to 10; replace the archive with the verified aclImdb_v1.tar.gz."
        )
    return int(rating)


def _load_imdb(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    return read_imdb_archive(paths["aclImdb_v1.tar.gz"])


@dataclass(frozen=True)
class DatasetSource:
    name: str
    files: tuple[RawFile, ...]
    load_arrays: Callable[[dict[str, Path]], dict[str, np.ndarray]]
    content_sha256: str | None = None  # for sources whose cache bytes vary by library version
    citation: str = ""

    @property
    def origin(self) -> str:
        """Where the data comes from (its first file's origin), for lineage records."""
        return self.files[0].origin if self.files else CALIFORNIA_ORIGIN

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Fetch, verify and parse: (arrays, {file name: sha256})."""
        paths, hashes = {}, {}
        for raw in self.files:
            paths[raw.name], hashes[raw.name] = fetch(raw)
        arrays = self.load_arrays(paths)
        if self.content_sha256 is not None:
            actual = array_sha256(*(arrays[key] for key in sorted(arrays)))
            if actual != self.content_sha256:
                raise DataError(
                    f"Dataset {self.name} loaded with content sha256 {actual}, expected "
                    f"{self.content_sha256}: the cached copy is corrupt or a different release. "
                    f"Replace it with the verified mirror copy or delete the cache to download again."
                )
            hashes["content"] = actual
        return arrays, hashes


_KERAS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# what sklearn.datasets.fetch_california_housing downloads (its ARCHIVE.url)
CALIFORNIA_ORIGIN = "https://ndownloader.figshare.com/files/5976036"


def _fashion_file(name: str, sha: str) -> RawFile:
    return RawFile(f"keras/datasets/fashion-mnist/{name}", _KERAS + name, (sha,))


SOURCES: dict[str, DatasetSource] = {
    source.name: source
    for source in (
        DatasetSource(
            name="california_housing",
            # sklearn builds the .pkz cache from cal_housing.tgz; its bytes vary with
            # joblib/numpy versions, so the check is on the array contents instead.
            files=(),
            load_arrays=_load_california,
            content_sha256="0a04da38bcebaf62f612e2e68c74839c4f5b3de6f759a5cc87c23918d4056388",
            citation="Pace & Barry (1997), StatLib; via sklearn.datasets.fetch_california_housing",
        ),
        DatasetSource(
            name="fashion_mnist",
            files=(
                _fashion_file(
                    "train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                _fashion_file(
                    "train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                _fashion_file(
                    "t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                _fashion_file(
                    "t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ),
            load_arrays=_load_fashion_mnist,
            citation="Xiao, Rasul & Vollgraf (2017), Zalando Research",
        ),
        DatasetSource(
            name="boston_housing",
            files=(
                RawFile(
                    "keras/datasets/boston_housing.npz",
                    _KERAS + "boston_housing.npz",
                    ("f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",),
                ),
            ),
            load_arrays=_load_boston,
            citation="Harrison & Rubinfeld (1978), StatLib; via keras.datasets.boston_housing",
        ),
        DatasetSource(
            name="reuters",
            files=(
                RawFile(
                    "keras/datasets/reuters.npz",
                    _KERAS + "reuters.npz",
                    ("d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",),
                ),
            ),
            load_arrays=_load_reuters,
            citation="Reuters-21578; via keras.datasets.reuters",
        ),
        DatasetSource(
            name="imdb_reviews",
            files=(
                RawFile(
                    "keras/datasets/aclImdb_v1.tar.gz",
                    "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    (
                        # Stanford's archive, and the deterministic re-pack of shared/data
                        # (same review files, no *.feat files).
                        "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
                        "5a6daf27e716a5c01f5a9195a6dec3c91970c24f86070db0bb6e9cd038789b57",
                    ),
                ),
            ),
            load_arrays=_load_imdb,
            citation="Maas et al. (2011), Large Movie Review Dataset v1.0",
        ),
        DatasetSource(
            name="thoracic_surgery",
            files=(
                RawFile(
                    "thoracic/ThoraricSurgery.csv",
                    "https://ds-lecture-data.s3.ap-northeast-2.amazonaws.com/everydeep/ThoraricSurgery.csv",
                    ("b51f69e60765c0b724c356fc3b9c5777b213c920b75ebb75b37b1f4b3702c379",),
                ),
            ),
            load_arrays=_load_thoracic,
            citation="Zieba et al. (2013), UCI Thoracic Surgery Data",
        ),
    )
}


def get_source(name: str) -> DatasetSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"Unknown dataset {name!r}; valid choices: {', '.join(sorted(SOURCES))}")


def describe(arrays: dict[str, np.ndarray]) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in arrays.items()}

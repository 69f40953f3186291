"""Fetching and verifying raw files, on small files the tests make."""

import hashlib
import io
import tarfile

import numpy as np
import pytest

from pipeline.data import sources
from pipeline.data.sources import RawFile, array_sha256, fetch, read_imdb_archive
from pipeline.errors import DataError

from conftest import run_module


def make_raw(tmp_path, content: bytes = b"hello") -> RawFile:
    (tmp_path / "thoracic").mkdir(exist_ok=True)
    (tmp_path / "thoracic" / "x.csv").write_bytes(content)
    return RawFile("thoracic/x.csv", "https://example.invalid/x.csv", (hashlib.sha256(b"hello").hexdigest(),))


def test_mirror_file_is_verified_and_used(tmp_path, monkeypatch):
    raw = make_raw(tmp_path)
    monkeypatch.setenv("PIPELINE_DATA_MIRROR", str(tmp_path))
    path, digest = fetch(raw)
    assert path == tmp_path / "thoracic" / "x.csv"
    assert digest == raw.sha256[0]


def test_wrong_checksum_names_file_hashes_and_both_fixes(tmp_path, monkeypatch):
    raw = make_raw(tmp_path, b"hellO")
    monkeypatch.setenv("PIPELINE_DATA_MIRROR", str(tmp_path))
    with pytest.raises(DataError) as error:
        fetch(raw)
    message = str(error.value)
    assert "x.csv" in message and raw.sha256[0] in message
    assert hashlib.sha256(b"hellO").hexdigest() in message
    assert "unset PIPELINE_DATA_MIRROR" in message and raw.origin in message


def test_missing_mirror_file_never_downloads(tmp_path, monkeypatch):
    raw = RawFile("keras/datasets/none.npz", "https://example.invalid/none.npz", ("0" * 64,))
    monkeypatch.setenv("PIPELINE_DATA_MIRROR", str(tmp_path))
    with pytest.raises(DataError, match=r"none.npz is missing: expected it at .*none.npz"):
        fetch(raw)
    assert not (tmp_path / "keras").exists()


def test_keras_files_are_linked_where_the_keras_loader_looks(tmp_path, monkeypatch):
    mirror, home = tmp_path / "mirror", tmp_path / "keras_home"
    (mirror / "keras/datasets").mkdir(parents=True)
    (mirror / "keras/datasets/f.npz").write_bytes(b"hello")
    raw = RawFile(
        "keras/datasets/f.npz", "https://example.invalid/f.npz", (hashlib.sha256(b"hello").hexdigest(),)
    )
    monkeypatch.setenv("PIPELINE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("KERAS_HOME", str(home))
    path, _ = fetch(raw)
    assert path == home / "datasets/f.npz" and path.resolve() == mirror / "keras/datasets/f.npz"
    fetch(raw)  # idempotent
    assert [p.name for p in (home / "datasets").iterdir()] == ["f.npz"]


def make_imdb_tarball(path, reviews):
    with tarfile.open(path, "w:gz") as archive:
        for name, text in reviews.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_imdb_archive_is_read_without_extraction(tmp_path):
    path = tmp_path / "a.tar.gz"
    make_imdb_tarball(
        path,
        {
            "aclImdb/train/pos/1_9.txt": "great",
            "aclImdb/train/neg/0_1.txt": "awful",
            "aclImdb/test/pos/0_8.txt": "fine",
            "aclImdb/train/unsup/0_0.txt": "skip me",
            "aclImdb/README": "readme",
        },
    )
    arrays = read_imdb_archive(path)
    assert list(arrays["text_train"]) == ["awful", "great"]
    assert list(arrays["y_train"]) == [0, 1]
    assert list(arrays["text_test"]) == ["fine"] and list(arrays["y_test"]) == [1]
    # the star rating of each review, from its file name <id>_<rating>.txt
    assert list(arrays["rating_train"]) == [1, 9] and list(arrays["rating_test"]) == [8]


def test_imdb_review_without_a_rating_in_its_name_is_a_clear_error(tmp_path):
    path = tmp_path / "a.tar.gz"
    make_imdb_tarball(path, {"aclImdb/train/pos/1.txt": "great"})
    with pytest.raises(DataError, match="<id>_<rating>.txt"):
        read_imdb_archive(path)


def test_archive_that_is_not_a_tarball_is_a_clear_error(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="not a readable gzip tarball"):
        read_imdb_archive(path)


def test_array_hash_depends_on_content_dtype_and_shape():
    a = np.arange(6, dtype="float64")
    assert array_sha256(a) == array_sha256(a.copy())
    assert array_sha256(a) != array_sha256(a.astype("float32"))
    assert array_sha256(a) != array_sha256(a.reshape(2, 3))


def test_every_dataset_has_origin_and_sha256():
    assert set(sources.SOURCES) == {
        "california_housing",
        "fashion_mnist",
        "boston_housing",
        "reuters",
        "imdb_reviews",
        "thoracic_surgery",
    }
    for source in sources.SOURCES.values():
        assert source.files or source.content_sha256, source.name
        for raw in source.files:
            assert raw.origin.startswith("https://") and all(len(h) == 64 for h in raw.sha256)


def test_prepare_with_corrupt_mirror_fails_cleanly(tmp_path):
    """A truncated file in the mirror: exit 1, one clear paragraph, no output directory."""
    mirror = tmp_path / "mirror"
    (mirror / "scikit_learn_data").mkdir(parents=True)
    (mirror / "scikit_learn_data" / "cal_housing_py3.pkz").write_bytes(b"truncated")
    work = tmp_path / "work"
    work.mkdir()
    result = run_module(
        "pipeline.prepare", "dataset=california_housing", cwd=work, env={"PIPELINE_DATA_MIRROR": str(mirror)}
    )
    assert result.returncode == 1, result.stderr
    assert "error: California housing could not be read" in result.stderr
    assert "Traceback" not in result.stderr
    assert "cal_housing_py3.pkz" in result.stderr
    assert not (work / "data").exists() or not any((work / "data").iterdir())

"""Where each data file comes from: the local mirror (``ROKD_DATA_DIR``) or the official public URL.

Every file a loader reads has a *mirror name* (its path under ``ROKD_DATA_DIR``, layout of
``shared/data/MANIFEST.md``). :data:`FILES` pins, for each name, the official raw-GitHub URL (repository at
the commit named in the MANIFEST) and a checksum: the MANIFEST's sha256 where the mirror holds the official
bytes, otherwise the git blob id of the official file (also from the MANIFEST; a git blob id is
``sha1(b"blob <size>\\0" + content)``, so it checks the content just as well). Files that exist only in the
mirror (reconstructions and extractions made there) have no URL.

``source="download"`` fetches into ``rokd.paths.cache_dir()/downloads`` through a temporary file that is
verified before it is renamed into place, so a failed or corrupted download never leaves a file behind.
A download stops as soon as it grows past its expected size (the MANIFEST's byte count where the file is
pinned by sha256, else :data:`MAX_DOWNLOAD_BYTES`): a wrong or hostile URL cannot fill the disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rokd import paths
from rokd.data.errors import ChecksumError, DataError, MissingDataError

# Monkeypatched by the tests to point at a local http.server.
GITHUB_RAW_BASE = "https://raw.githubusercontent.com"

SOURCES = ("auto", "mirror", "download")
# Cap of a download whose size is not pinned (the git-blob files; the largest official file is ~15 MB).
MAX_DOWNLOAD_BYTES = 256 << 20


@dataclass(frozen=True)
class DataFile:
    """One file: its mirror name, and how to fetch and check the official version."""

    name: str  # path under the mirror, e.g. "rrt/ro_rrt-ud-dev.conllu"
    repo: str | None = None  # "owner/name" on GitHub; None = mirror only
    commit: str | None = None
    repo_path: str | None = None
    sha256: str | None = None  # of the bytes (mirror and official are identical)
    git_blob: str | None = None  # official file's git blob id, where its sha256 is not known
    size: int | None = None  # bytes of the official file, when known (from the MANIFEST)

    @property
    def max_bytes(self) -> int:
        """The most a download of this file may bring."""
        return self.size if self.size is not None else MAX_DOWNLOAD_BYTES

    @property
    def url(self) -> str | None:
        if not self.repo:
            return None
        return f"{GITHUB_RAW_BASE}/{self.repo}/{self.commit}/{self.repo_path}"


UD_RRT = ("UniversalDependencies/UD_Romanian-RRT", "cc00bf852bc3c19ac345457eef8b3e5665392a72")
RONEC = ("dumitrescustefan/ronec", "5ca6a898d4fa42f27fd49501d4a3265e61e9340c")
LAROSEDA = ("ancatache/LaRoSeDa", "162f4c8f4a10000f7a3b65436512212b3bb629fb")
MOROCO = ("butnaruandrei/MOROCO", "eb9ee0292d5064ce3bc6c904dcdd4708d3dbe1d3")
ROSTS = ("dumitrescustefan/RO-STS", "98b5804b454892c70815777fe03e874ea7f20f1b")


def _f(name, origin=None, repo_path=None, sha256=None, git_blob=None, size=None) -> DataFile:
    repo, commit = origin if origin else (None, None)
    return DataFile(name, repo, commit, repo_path, sha256, git_blob, size)


_MOROCO_LABEL_SHA = {
    ("train", "dialect"): "2371810d45f4c2e535c6ba3705c6e367c9b1eb30835a5689525affb1bfeae905",
    ("validation", "dialect"): "9ae17a179e4051bc128a71afc11e25557c4515f785e930bc8bebb5fcb745253d",
    ("test", "dialect"): "36fe324a1b07a38294ba3f5ff167d81c5a668c7df480bfc102d7f8089c1fed0b",
}
_MOROCO_LABEL_SIZE = {"train": 173_752, "validation": 47_368, "test": 47_392}
_MOROCO_SAMPLES_BLOB = {
    "train": "f1f7e2356c052b452180afe4422ce2afb54d04e5",
    "validation": "512933eba849b809ed1f8321e51fb31992df1525",
    "test": "d34d6da1aafd33b3f50956a203c0d276420df5be",
}

_ALL = [
    # RRT: dev/test are the official files; the official train is absent from the mirror, which holds a
    # reconstruction from RACAI's Rodna repository instead (mirror only).
    _f(
        "rrt/ro_rrt-ud-dev.conllu",
        UD_RRT,
        "ro_rrt-ud-dev.conllu",
        sha256="6e940a2dfd3c1ded9859f2fa5c9b1edb687cd0b4b9d99c6496f7cc729b8742d9",
        size=1_347_209,
    ),
    _f(
        "rrt/ro_rrt-ud-test.conllu",
        UD_RRT,
        "ro_rrt-ud-test.conllu",
        sha256="9084ce9ae5f43d25ff39e66f42f3d2e41e85030891beccb1eb70fed444fbe3f4",
        size=1_285_762,
    ),
    _f(
        "rrt/ro_rrt-ud-train.conllu",
        UD_RRT,
        "ro_rrt-ud-train.conllu",
        git_blob="53104d80f613f3df88b3b02dd72286576ce25228",
    ),
    _f(
        "rrt/ro_rrt-ud-train.reconstructed.conllu",
        sha256="4d1a3508056c5dcfbea0827d3b086645e288dc650c0635b5d8dcfb4ea1329bba",
    ),
    # RONEC v2
    _f(
        "ronec/valid.json",
        RONEC,
        "data/valid.json",
        sha256="0c3e08c8fb7058c96d91c30cc3fe12b684b682c1c481e84a9d05aac14b59fe04",
        size=1_567_702,
    ),
    _f(
        "ronec/test.json",
        RONEC,
        "data/test.json",
        sha256="7532619fd6680adb4c3926f5e185f3c1705caeb2d8466e9fe2a4428e81660704",
        size=2_355_095,
    ),
    _f("ronec/train.json", RONEC, "data/train.json", git_blob="2fe4ca48da4a6486373ce00ac739481fb7b2033a"),
    # LaRoSeDa: train is always rebuilt as (all reviews) - (test), which is what the official train is.
    _f(
        "laroseda/positive_reviews.json",
        LAROSEDA,
        "data/positive_reviews.json",
        sha256="214ff571d28f3f1660a69e96e53255274091e5cd6b4bc7d06d2ba4ca7a6a2cd7",
        size=2_438_675,
    ),
    _f(
        "laroseda/negative_reviews.json",
        LAROSEDA,
        "data/negative_reviews.json",
        sha256="81a6f10719fda27aed71ddf0131c3037358d1ae3908486a480699eba732885c7",
        size=2_818_508,
    ),
    _f(
        "laroseda/laroseda_test.json",
        LAROSEDA,
        "data/laroseda_test.json",
        sha256="6084cabe923da9f71413357eaa84f3ea4523ef5ff0e81e2c3ac3861405e2151a",
        size=1_025_519,
    ),
    # MOROCO: official labels everywhere; official texts only by download; VarDial-2019 texts mirror only.
    *[
        _f(
            f"moroco/preprocessed/{s}/dialect_labels.txt",
            MOROCO,
            f"MOROCO/preprocessed/{s}/dialect_labels.txt",
            sha256=_MOROCO_LABEL_SHA[(s, "dialect")],
            size=_MOROCO_LABEL_SIZE[s],
        )
        for s in ("train", "validation", "test")
    ],
    *[
        _f(
            f"moroco/preprocessed/{s}/samples.txt",
            MOROCO,
            f"MOROCO/preprocessed/{s}/samples.txt",
            git_blob=_MOROCO_SAMPLES_BLOB[s],
        )
        for s in ("train", "validation", "test")
    ],
    _f(
        "moroco/vardial2019_mrc_test/test.txt",
        sha256="a6da04ff7de8f25a8d7cb15c1338615a52edb3b1055ccdebf2f2248a7db76dcb",
    ),
    _f(
        "moroco/vardial2019_mrc_test/labels.tsv",
        sha256="ad724d2c7a37a91e529dc4b402054863037786158d4ef1ca698febaaadd1354e",
    ),
    # RO-STS
    _f(
        "rosts/RO-STS.train.tsv",
        ROSTS,
        "dataset/text-similarity/RO-STS.train.tsv",
        sha256="5e2f24ad5443ed1199a0079dd0b5de9f1fec8a2bb3b0a70f6e3616c32d6d282f",
        size=844_672,
    ),
    _f(
        "rosts/RO-STS.dev.tsv",
        ROSTS,
        "dataset/text-similarity/RO-STS.dev.tsv",
        sha256="914f0ca935c71b317179bab9e052867aeaad84cc143b011d5919a00d444553ef",
        size=236_912,
    ),
    _f(
        "rosts/RO-STS.test.tsv",
        ROSTS,
        "dataset/text-similarity/RO-STS.test.tsv",
        sha256="fd84bc1f9581e6352f0c797cb46fdf08a39f7b908a6ff1cfe21deb62f8c78e0c",
        size=186_023,
    ),
]
FILES: dict[str, DataFile] = {f.name: f for f in _ALL}


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, in one streaming pass."""
    size = path.stat().st_size
    sha = hashlib.sha256()
    blob = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            blob.update(chunk)
    return sha.hexdigest(), blob.hexdigest()


def verify(path: Path, spec: DataFile, what: str | None = None, hint: str = "") -> str:
    """Check ``path`` against ``spec``'s pinned checksum; return the file's sha256."""
    sha, blob = file_digests(path)
    what = what or str(path)
    if spec.sha256 and sha != spec.sha256:
        raise ChecksumError(what, "sha256", spec.sha256, sha, hint)
    if not spec.sha256 and spec.git_blob and blob != spec.git_blob:
        raise ChecksumError(what, "git-blob-sha1", spec.git_blob, blob, hint)
    return sha


def resolve_source(source: str, data_dir: Path | str | None) -> tuple[str, Path | None]:
    """Turn (``source``, ``data_dir``) into (``"mirror"``/``"download"``, mirror directory or None)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    mirror = Path(data_dir).expanduser().resolve() if data_dir is not None else paths.data_dir()
    if source == "auto":
        source = "mirror" if mirror is not None else "download"
    if source == "mirror":
        if mirror is None:
            raise MissingDataError(
                "source='mirror' needs a local data mirror, but ROKD_DATA_DIR is not set and no data_dir was given. "
                "Set ROKD_DATA_DIR to the mirror directory (layout of MANIFEST.md, e.g. ../shared/data), "
                "or use source='download'."
            )
        if not mirror.is_dir():
            raise MissingDataError(
                f"data mirror {mirror} (ROKD_DATA_DIR) is not a directory. Point ROKD_DATA_DIR at the mirror (layout "
                "of MANIFEST.md)."
            )
    return source, mirror if source == "mirror" else None


def download_dir() -> Path:
    return paths.cache_dir() / "downloads"


class Fetcher:
    """Resolves mirror names to verified local paths, from the mirror or by download.

    ``get(name)`` returns the path, or None for an ``optional`` file that this source does not have.
    ``digests`` collects the sha256 of every file handed out (the parsed-data cache key).
    """

    def __init__(self, source: str = "auto", data_dir: Path | str | None = None):
        self.source, self.mirror = resolve_source(source, data_dir)
        self.digests: dict[str, str] = {}

    def describe(self, name: str) -> str:
        """Where a file came from, for provenance."""
        spec = FILES.get(name)
        if self.source == "mirror":
            return f"mirror:{name}"
        return spec.url if spec and spec.url else name

    def get(self, name: str, optional: bool = False) -> Path | None:
        spec = FILES.get(name, DataFile(name))
        path = (
            self._mirror_get(name, spec, optional) if self.source == "mirror" else self._download(name, spec, optional)
        )
        if path is not None and name not in self.digests:
            hint = (
                "The mirror file differs from the one pinned in MANIFEST.md; restore it from the mirror."
                if self.source == "mirror"
                else f"Delete {path} and run again to download it afresh."
            )
            self.digests[name] = verify(path, spec, hint=hint)
        return path

    def _mirror_get(self, name: str, spec: DataFile, optional: bool) -> Path | None:
        path = self.mirror / name
        if path.is_file():
            return path
        if optional:
            return None
        raise MissingDataError(
            f"required data file {path} not found. ROKD_DATA_DIR (data mirror) = {self.mirror}. "
            f"Fix: point ROKD_DATA_DIR at a complete mirror laid out as in MANIFEST.md (e.g. ../shared/data)"
            + (f", or unset it so that rokd downloads {spec.url} into {download_dir()}." if spec.url else ".")
        )

    def _download(self, name: str, spec: DataFile, optional: bool) -> Path | None:
        target = download_dir() / name
        if target.is_file():
            return target
        if spec.url is None:
            if optional:
                return None
            raise MissingDataError(
                f"{name} exists only in the local data mirror (no official URL), and ROKD_DATA_DIR is not set. "
                "Fix: set ROKD_DATA_DIR to the mirror directory (layout of MANIFEST.md)."
            )
        return download(spec.url, target, spec)


def _too_big(url: str, spec: DataFile, got: str) -> DataError:
    if spec.size is not None:
        expected = f"its expected size, {spec.size:,} bytes"
    else:
        expected = f"the {spec.max_bytes:,}-byte cap"
    return DataError(
        f"download of {url} stopped: {got}, more than {expected}; the server does not send the pinned "
        "file (nothing was written to the cache). Check the URL, or set ROKD_DATA_DIR to a local data "
        "mirror."
    )


def download(url: str, target: Path, spec: DataFile, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``target`` via a temporary file; verify the checksum before renaming.

    At most ``spec.max_bytes`` are read: a larger announced or actual size stops the download.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    cap = spec.max_bytes
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                announced = resp.headers.get("Content-Length")
                if announced and announced.isdigit() and int(announced) > cap:
                    raise _too_big(url, spec, f"the server announces {int(announced):,} bytes")
                received = 0
                for chunk in iter(lambda: resp.read(min(1 << 20, cap + 1 - received) or 1), b""):
                    received += len(chunk)
                    if received > cap:
                        raise _too_big(url, spec, f"more than {cap:,} bytes arrived")
                    out.write(chunk)
        except DataError:
            raise
        except (urllib.error.URLError, OSError) as e:
            raise DataError(
                f"could not download {url} ({e}). Check the network, or set ROKD_DATA_DIR to a local data mirror "
                "(layout of MANIFEST.md)."
            ) from e
        verify(
            tmp,
            spec,
            what=f"{url} (downloaded for {target})",
            hint="The download was discarded; nothing was written to the cache.",
        )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target

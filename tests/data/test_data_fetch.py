"""`data fetch` from a URL (urlopen mocked, no network): a bad, truncated or cut-off download is one line,
leaves no archive and no .part behind, and the next fetch downloads afresh and succeeds."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import tarfile
import urllib.request

import pytest

from simcse_lab.cli import main
from simcse_lab.data import registry

FILES = {"SentEval/data/downstream/STS/toy/STS.input.toy.txt": b"a cat\ta dog\n",
         "SentEval/data/downstream/STS/toy/STS.gs.toy.txt": b"4.0\n"}


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel, data in FILES.items():
            info = tarfile.TarInfo("SentEval/data/downstream/" + rel.split("downstream/", 1)[1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registry whose one dataset comes from https://example.invalid/toy.tar; the cache is tmp_path/cache."""
    manifest = {"format": 1, "datasets": {"toy": {
        "description": "toy", "kind": "senteval_sts", "license": "test", "url": "https://example.invalid/toy.tar",
        "splits": {"test": {"subsets": [{"name": "toy", "input": list(FILES)[0], "gold": list(FILES)[1]}]}},
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in FILES.items()}}}}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setattr(registry, "MANIFEST", path)
    registry.manifest.cache_clear()
    monkeypatch.delenv("SIMCSE_LAB_DATA", raising=False)
    monkeypatch.setenv("SIMCSE_LAB_CACHE", str(tmp_path / "cache"))
    served = []

    def serve(payload) -> None:
        served.append(payload)

    def urlopen(url, timeout=None):
        payload = served.pop(0)
        return payload() if callable(payload) else io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    yield serve, tmp_path / "cache"
    registry.manifest.cache_clear()


def _fetch(capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(["data", "fetch", "toy"])
    return exc.value.code, capsys.readouterr().err


class _CutOff(io.BytesIO):
    """A response whose connection drops after the first bytes."""

    def read(self, n=-1):
        if self.tell():
            raise http.client.IncompleteRead(b"", 1000)
        return super().read(16)


@pytest.mark.parametrize("bad", ["html", "truncated", "cut-off"])
def test_a_bad_download_is_one_line_deleted_and_fetched_afresh(toy, capsys, bad):
    serve, cache = toy
    serve({"html": b"<html>502 Bad Gateway</html>", "truncated": _tar()[:700],
           "cut-off": lambda: _CutOff(_tar())}[bad])
    code, err = _fetch(capsys)
    assert code == 2 and err.count("\n") <= 2 and "Traceback" not in err  # 'downloading URL' + the error
    assert "simcse-lab: error:" in err and err.strip().splitlines()[-1].startswith("simcse-lab: error:")
    downloads = cache / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == []  # no archive, no .part, no staging dir
    serve(_tar())
    code, err = _fetch(capsys)
    assert code == 0 and "downloading https://example.invalid/toy.tar" in err
    assert len(registry.load_split("toy", "test")["toy"]) == 1

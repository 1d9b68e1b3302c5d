from pathlib import Path

from batchscribe.inputs import discover
from batchscribe.outputs.layout import output_path, plan_stems


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_layout_is_mirrored_and_non_media_ignored(tmp_path):
    _touch(tmp_path / "in/a/b/c.mp3")
    _touch(tmp_path / "in/a/notes.txt")
    _touch(tmp_path / "in/.hidden.wav")
    files, missing = discover([str(tmp_path / "in")])
    assert missing == []
    assert [f.relative for f in files] == [Path("a/b/c.mp3")]
    stem = plan_stems(files)[files[0]]
    assert output_path(tmp_path / "out", stem, "srt") == tmp_path / "out/a/b/c.mp3.srt"


def test_direct_file_lands_at_top_and_glob_mirrors_below_its_base(tmp_path):
    direct = _touch(tmp_path / "x/y/talk.wav")
    _touch(tmp_path / "g/one/a.flac")
    _touch(tmp_path / "g/two/b.flac")
    files, _ = discover([str(direct), str(tmp_path / "g/**/*.flac")])
    assert sorted(str(f.relative) for f in files) == ["one/a.flac", "talk.wav", "two/b.flac"]


def test_same_stem_different_extension_keeps_extensions(tmp_path):
    _touch(tmp_path / "in/c.mp3")
    _touch(tmp_path / "in/c.wav")
    files, _ = discover([str(tmp_path / "in")])
    assert sorted(str(s) for s in plan_stems(files).values()) == ["c.mp3", "c.wav"]


def test_same_name_from_two_folders_is_numbered_in_path_order(tmp_path):
    first = _touch(tmp_path / "a/c.wav")
    second = _touch(tmp_path / "b/c.wav")
    files, _ = discover([str(second), str(first)])
    stems = {f.path: str(s) for f, s in plan_stems(files).items()}
    assert stems == {first: "c.wav", second: "c.wav-2"}


def test_same_file_twice_is_transcribed_once(tmp_path):
    path = _touch(tmp_path / "c.wav")
    files, _ = discover([str(path), str(tmp_path)])
    assert len(files) == 1


def test_missing_path_and_empty_glob_are_reported(tmp_path):
    files, missing = discover([str(tmp_path / "nope.wav"), str(tmp_path / "*.mp3")])
    assert files == []
    assert "no such file" in missing[0].error
    assert "no files match" in missing[1].error

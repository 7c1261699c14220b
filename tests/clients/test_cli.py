"""deepfake-scan as a user runs it: a subprocess over files and folders, with its output and exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clients import cli
from tests.clients.fake_servers import predict_server, scripted
from tests.clients.images import encode, photo_with_faces, shared_faces
from tests.helpers import REPO, free_port

UNICODE_NAME = "лицо 顔 😀.jpg"


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m clients.cli ARGS` (the same main as the deepfake-scan console script)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_SERVING_TARGET"}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "clients.cli", *args], cwd=REPO, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout, env=env)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder with two face photos (one with a Unicode name) in a sub-folder."""
    root = tmp_path_factory.mktemp("scan")
    (root / "sub").mkdir()
    faces = shared_faces(4, seed=11)
    (root / UNICODE_NAME).write_bytes(encode(photo_with_faces([(faces[0], (200, 150, 420))], (1024, 768)), "JPEG"))
    (root / "sub" / "b.png").write_bytes(encode(photo_with_faces([(faces[1], (100, 100, 300))], (800, 600)), "PNG"))
    (root / "notes.txt").write_text("not scanned: folders are searched for image suffixes only")
    return root


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.integration
def test_cli_subprocess_against_the_real_server(model_server, photos):
    """The console entry point end to end: JSON lines, Unicode names, and an exit code that follows the labels."""
    r = run_cli(str(photos), "--json", "--target", model_server)
    rows = _json_lines(r.stdout)
    assert {row["filename"] for row in rows} == {UNICODE_NAME, "b.png"}, r.stderr
    for v in rows:
        assert v["label"] in ("fake", "real", "uncertain") and not v["whole_image"] and len(v["faces"]) == 1
        assert v["model_version"] >= 1 and len(v["sha256"]) == 64
    labels = [row["label"] for row in rows]
    assert r.returncode == (1 if "fake" in labels else 0)
    assert "Traceback" not in r.stderr


@pytest.mark.integration
def test_bad_file_is_reported_and_the_scan_goes_on(model_server, photos, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    code = cli.main([str(bad), str(photos), "--json", "--target", model_server])
    rows = _json_lines(capsys.readouterr().out)
    by_name = {row["filename"]: row for row in rows}
    assert set(by_name) == {UNICODE_NAME, "b.png", "broken.jpg"}
    assert by_name["broken.jpg"]["error"]["kind"] in ("NotAnImage", "CorruptImage")
    assert "JPEG, PNG or WebP" in by_name["broken.jpg"]["error"]["message"] or "damaged" in by_name["broken.jpg"]["error"]["message"]
    assert "label" in by_name["b.png"] and "label" in by_name[UNICODE_NAME]
    assert code == 2  # a bad file: reported, the scan went on, and the exit code says so


@pytest.mark.integration
@pytest.mark.parametrize("probability,code,label", [(0.1, 0, "real"), (0.9, 1, "fake"), (0.5, 0, "uncertain")])
def test_cli_exit_codes_with_a_threshold_we_control(photos, probability, code, label, capsys):
    """In-process main() (the subprocess path is covered above) against our own server with a known answer."""
    with predict_server(scripted([probability], threshold=0.5, band=0.05)) as (target, _):
        returncode = cli.main([str(photos), "--target", target])
    out = capsys.readouterr().out
    assert returncode == code, out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["file", "verdict"]
    assert sum(f" {label} " in line for line in lines[1:]) == 2
    assert any(UNICODE_NAME in line for line in lines)


@pytest.mark.integration
def test_an_image_without_a_face_gets_no_verdict_and_never_exits_fake(tmp_path, capsys):
    """The model scores a face-less picture 0.9: the row and JSON say no_face, the exit code does not say fake."""
    plain = tmp_path / "landscape.jpg"
    plain.write_bytes(encode(photo_with_faces([], (640, 480), seed=7), "JPEG"))
    with predict_server(scripted([0.9], threshold=0.5, band=0.05)) as (target, _):
        table_code = cli.main([str(plain), "--target", target])
        table = capsys.readouterr().out.splitlines()
        json_code = cli.main([str(plain), "--json", "--target", target])
        rows = _json_lines(capsys.readouterr().out)
    assert table_code == json_code == 0
    row = next(line for line in table if "landscape.jpg" in line)
    assert row.split()[1] == "no_face" and " fake " not in row and " real " not in row and "%" not in row
    assert len(rows) == 1 and rows[0]["whole_image"] and rows[0]["shown_label"] == "no_face"
    assert rows[0]["headline"] == "No face found: no real/fake verdict"
    assert rows[0]["label"] == "fake"  # the model's own whole-image label stays in the JSON, for the record


def test_a_no_face_verdict_never_counts_as_fake_in_the_exit_code():
    verdict = {"label": "fake", "shown_label": "no_face", "confidence": 0.9, "fake_probability": 0.9,
               "whole_image": True, "faces": [], "warnings": [{"code": "no_face"}]}
    face = dict(verdict, shown_label="fake", whole_image=False, faces=[{}], warnings=[])
    assert cli.exit_code([cli.Outcome(Path("a.jpg"), verdict=verdict)]) == cli.EXIT_OK
    assert cli.exit_code([cli.Outcome(Path("a.jpg"), verdict=verdict),
                          cli.Outcome(Path("b.jpg"), verdict=face)]) == cli.EXIT_FAKE
    assert cli.table_row(cli.Outcome(Path("a.jpg"), verdict=verdict), 8).split()[1:3] == ["no_face", "0.900"]


def test_cli_with_the_server_down_exits_2_with_a_plain_message(photos):
    r = run_cli(str(photos / UNICODE_NAME), "--target", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert r.returncode == 2
    assert "not reachable" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_cli_missing_path_is_reported(capsys):
    assert cli.main(["/nonexistent/file.jpg", "--json", "--target", f"127.0.0.1:{free_port()}"]) == 2
    assert _json_lines(capsys.readouterr().out)[0]["error"]["kind"] == "NotFound"


@pytest.mark.integration
def test_cli_writes_a_pdf_per_file_under_a_unicode_name(photos, tmp_path, capsys):
    with predict_server(scripted([0.2])) as (target, _):
        code = cli.main([str(photos / UNICODE_NAME), "--pdf", str(tmp_path / "reports"), "--json", "--target", target])
    rows = _json_lines(capsys.readouterr().out)
    assert code == 0 and len(rows) == 1
    pdfs = list((tmp_path / "reports").glob("*.pdf"))
    assert [p.name for p in pdfs] == [Path(UNICODE_NAME).stem + ".pdf"]
    assert pdfs[0].read_bytes().startswith(b"%PDF") and rows[0]["pdf"] == str(pdfs[0])


@pytest.mark.integration
def test_parallel_jobs_print_the_same_results_in_file_order(tmp_path, capsys):
    """--jobs overlaps files but the output is the sequential one; same-named files get separate PDFs."""
    face = shared_faces(1, seed=2)[0]
    for i in range(5):
        for folder in ("x", "y"):
            (tmp_path / folder).mkdir(exist_ok=True)
            (tmp_path / folder / f"p{i}.jpg").write_bytes(
                encode(photo_with_faces([(face, (60 + 30 * i, 80, 260))], (640, 480), seed=i), "JPEG"))
    runs = {}
    with predict_server(scripted([0.2])) as (target, _):
        for jobs in ("1", "4"):
            code = cli.main([str(tmp_path / "x"), str(tmp_path / "y"), "--json", "--jobs", jobs, "--target", target,
                             "--pdf", str(tmp_path / f"pdf{jobs}")])
            rows = _json_lines(capsys.readouterr().out)
            runs[jobs] = (code, [(r["path"], r["label"], r["sha256"], r["faces"][0]["box"]) for r in rows])
    assert runs["1"] == runs["4"] and len(runs["4"][1]) == 10
    assert [Path(p).name for p, *_ in runs["4"][1]][:5] == [f"p{i}.jpg" for i in range(5)]
    assert len(list((tmp_path / "pdf4").glob("*.pdf"))) == 10  # p0.pdf and p0-2.pdf, never one overwriting the other


def test_with_the_server_down_parallel_jobs_stop_calling_it(tmp_path, capsys):
    for i in range(8):
        (tmp_path / f"f{i}.png").write_bytes(encode(photo_with_faces([], (200, 200), seed=i), "PNG"))
    code = cli.main([str(tmp_path), "--json", "--jobs", "2", "--timeout", "1",
                     "--target", f"127.0.0.1:{free_port()}"])
    rows = _json_lines(capsys.readouterr().out)
    kinds = [r["error"]["kind"] for r in rows]
    assert code == 2 and len(rows) == 8
    assert [r["filename"] for r in rows] == [f"f{i}.png" for i in range(8)]
    assert kinds[:3] == ["DetectorUnavailable"] * 3 and kinds[-1] == "Skipped"
    assert set(kinds) == {"DetectorUnavailable", "Skipped"}


def test_an_empty_folder_warns_and_exits_2(tmp_path, capsys):
    """Nothing to check is not a clean scan: the user is told, and scripts see a failure."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("no picture here")
    code = cli.main([str(tmp_path / "empty"), str(tmp_path / "texts"), "--target", f"127.0.0.1:{free_port()}"])
    captured = capsys.readouterr()
    assert code == 2
    assert f"no JPEG, PNG or WebP image in {tmp_path / 'empty'}" in captured.err
    assert "Nothing to check" in captured.err and "readme.txt" in captured.err
    assert "0 file(s)" not in captured.err + captured.out


def test_folders_are_searched_by_content_and_skipped_files_are_listed(tmp_path, capsys):
    """A .jfif, a file without an extension and an upper-case .JPEG are checked; a .jpg of text is listed as skipped."""
    photo = photo_with_faces([], (200, 160), seed=3)
    (tmp_path / "camera.jfif").write_bytes(encode(photo, "JPEG"))
    (tmp_path / "no_extension").write_bytes(encode(photo, "PNG"))
    (tmp_path / "SHOUT.JPEG").write_bytes(encode(photo, "JPEG"))
    (tmp_path / "lossless.bin").write_bytes(encode(photo, "WEBP"))
    (tmp_path / "fake.jpg").write_text("just text with a picture's name")
    (tmp_path / "notes.txt").write_text("not a picture")

    found = cli.expand([tmp_path])
    assert [p.name for p in found.files] == ["SHOUT.JPEG", "camera.jfif", "lossless.bin", "no_extension"]
    assert [p.name for p in found.skipped] == ["fake.jpg", "notes.txt"] and not found.empty_dirs

    code = cli.main([str(tmp_path), "--json", "--jobs", "1", "--timeout", "1", "--target", f"127.0.0.1:{free_port()}"])
    captured = capsys.readouterr()
    assert code == 2  # the server is down: every found image was tried, none could be checked
    assert {r["filename"] for r in _json_lines(captured.out)} == {"SHOUT.JPEG", "camera.jfif", "lossless.bin",
                                                                  "no_extension"}
    assert "skipped 2 file(s)" in captured.err
    assert str(tmp_path / "fake.jpg") in captured.err and str(tmp_path / "notes.txt") in captured.err


def test_image_kind_reads_the_magic_bytes():
    photo = photo_with_faces([], (80, 80), seed=1)
    assert [cli.image_kind(encode(photo, f)[:12]) for f in ("JPEG", "PNG", "WEBP")] == ["JPEG", "PNG", "WEBP"]
    assert cli.image_kind(b"GIF89a......") is None and cli.image_kind(b"") is None
    assert cli.image_kind(b"RIFF\x00\x00\x00\x00WAVE") is None


def test_display_width_counts_terminal_columns():
    assert cli.display_width("abc.jpg") == 7
    assert cli.display_width("顔写真.jpg") == 10          # three wide CJK characters, two columns each
    assert cli.display_width("лицо 😀") == 7              # Cyrillic narrow, the emoji wide
    assert cli.display_width("e\u0301") == 1              # a combining accent takes no column
    assert cli.display_width("사진") == 4 and cli.display_width("ｆｕｌｌ") == 8


@pytest.mark.parametrize("width", [12, 30, 60])
def test_table_columns_line_up_with_wide_and_long_names(width):
    """Every row's verdict column starts at the same terminal column, whatever script the file names use."""
    names = ["a.jpg", "顔写真.jpg", UNICODE_NAME, "사진/가족 사진 2024.png", "e\u0301te\u0301.png",
             "写真" * 40 + ".jpg", "folder/" + "x" * 80 + ".png"]
    verdict = {"label": "real", "confidence": 0.9, "fake_probability": 0.1, "whole_image": False,
               "faces": [{}], "warnings": [{"code": "blur"}]}
    outcomes = [cli.Outcome(Path(n), verdict=verdict) for n in names[:-1]]
    outcomes.append(cli.Outcome(Path(names[-1]), error_kind="NotAnImage", error="Not an image."))
    lines = [cli.table_header(width)] + [cli.table_row(o, width) for o in outcomes]
    starts = {cli.display_width(line[:line.index(word)])
              for line, word in zip(lines, ["verdict"] + ["real"] * (len(names) - 1) + ["ERROR"])}
    assert starts == {width + 2}, lines
    assert any(line.startswith("…") for line in lines[1:]), "a name too long for the column keeps its end"


def test_the_name_column_is_as_wide_as_the_widest_name_in_columns():
    assert cli.name_width([Path("顔写真.jpg"), Path("a.jpg")]) == 10
    assert cli.name_width([Path("写真" * 40)]) == cli.NAME_COLUMN_MAX
    assert cli.name_width([Path("a")]) == 4

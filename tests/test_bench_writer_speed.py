"""benchmarks.writer_speed: a row per preset and repeat, each a real file read back against the frames written."""
import json
from pathlib import Path

from benchmarks import writer_speed

CLIP = Path(__file__).parent / "data" / "carphone_qcif_16f.mp4"


def test_rows_per_preset_and_the_written_file_is_close(tmp_path):
    assert writer_speed.main([str(CLIP), "--frames", "4", "--repeat", "1", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("writer_carphone_qcif_16f_*.json")
    record = json.loads(path.read_text())
    assert [r["preset"] for r in record["rows"]] == ["superfast", "ultrafast"] and record["frames"] == 4
    for row in record["rows"]:
        assert row["frames_per_second"] > 0 and row["kib"] > 0
        assert row["psnr_vs_written"] > 40      # CRF 10: near-transparent

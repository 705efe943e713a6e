"""add_recipes.py appends a session's Bunny runs to the recipe log once, with their curves."""
import json

from benchmarks.add_recipes import add


def test_runs_are_added_once_with_their_curves(tmp_path):
    run = tmp_path / "res" / "bunny-adan"
    run.mkdir(parents=True)
    record = {"size": "3M", "epochs": 300, "recipe": "batch 1, lr 0.003, adan", "psnr_float": 38.2,
              "command": "bunny.py x --sizes 3M", "date": "2026-12-03"}
    (run / "bunny.json").write_text(json.dumps([record]))
    (run / "bunny-curves.json").write_text(json.dumps({"3M batch 1, lr 0.003, adan": [20.0, 30.0]}))
    log = tmp_path / "log"
    log.mkdir()
    (log / "recipes.json").write_text(json.dumps([{"size": "3M", "psnr_float": 37.9, "command": "old"}]))

    assert add([run / "bunny.json"], "session 9", "H200 d", into=log) == 1
    assert add([run / "bunny.json"], "session 9", "H200 d", into=log) == 0      # again: nothing new
    records = json.loads((log / "recipes.json").read_text())
    assert [r["psnr_float"] for r in records] == [37.9, 38.2]
    assert records[1]["round"] == "session 9" and records[1]["machine"] == "H200 d"
    assert records[1]["note"] == "bunny-adan"
    curves = json.loads((log / "recipes-curves.json").read_text())
    assert curves == {"3M 300 epochs, batch 1, lr 0.003, adan (session 9, H200 d)": [20.0, 30.0]}

"""The one reader of a model directory's records (`wldetect.artifacts`): languages, training summary, mask
and mask record, and what produced the model. Everyone else (the detector, evaluation, the weight analysis,
post-hoc masking, comparison) asks it, so these tests pin what it makes of each file, damaged ones included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from wldetect.artifacts import (
    model_origin,
    read_mask_record,
    read_model_config,
    read_token_mask,
    recorded_evaluation,
    training_summary,
)
from wldetect.errors import WLDetectError


def test_model_config_languages_come_in_column_order(tmp_path):
    (tmp_path / "model_config.yaml").write_text(yaml.safe_dump({"languages": {"fra_Latn": 1, "eng_Latn": 0}}))
    config, languages = read_model_config(tmp_path)
    assert languages == ["eng_Latn", "fra_Latn"] and config["languages"]["fra_Latn"] == 1


@pytest.mark.parametrize("text", [None, "languages: [eng_Latn]\n", "just text\n", "\xff\xfe"])
def test_a_missing_or_malformed_model_config_is_one_line(tmp_path, text):
    if text is not None:
        (tmp_path / "model_config.yaml").write_bytes(text.encode("latin-1"))
    with pytest.raises(WLDetectError, match="model_config.yaml") as caught:
        read_model_config(tmp_path)
    assert "\n" not in str(caught.value)


def test_the_training_summary_reads_none_where_it_cannot_tell(tmp_path):
    assert training_summary(tmp_path) is None and recorded_evaluation(tmp_path) == {}
    (tmp_path / "training_summary.json").write_text("[1, 2]")  # not an object
    assert training_summary(tmp_path) is None
    (tmp_path / "training_summary.json").write_text("{not json")
    assert training_summary(tmp_path) is None
    summary = {"config": {"evaluation": {"dataset": "pud", "split": "dev"}}, "token_ids": "x_token_ids"}
    (tmp_path / "training_summary.json").write_text(json.dumps(summary))
    assert training_summary(tmp_path) == summary
    assert recorded_evaluation(tmp_path) == {"dataset": "pud", "split": "dev"}


def test_the_token_mask_is_read_from_the_directory(tmp_path):
    assert read_token_mask(tmp_path) is None
    np.save(tmp_path / "token_mask.npy", np.arange(6) >= 2)
    assert read_token_mask(tmp_path).tolist() == [False, False, True, True, True, True]
    assert read_mask_record(tmp_path)["tokens_masked"] == 2  # counted from the mask file alone


def test_model_origin_names_what_produced_the_model(tmp_path):
    assert model_origin(tmp_path) is None  # no model files
    (tmp_path / "model_config.yaml").write_text("languages: {eng_Latn: 0}\n")
    assert model_origin(tmp_path) == "unknown"
    (tmp_path / "training_summary.json").write_text(json.dumps({"config_path": "params/training/demo.yaml"}))
    assert model_origin(tmp_path).startswith("training with ") and model_origin(tmp_path).endswith("demo.yaml")
    (tmp_path / "mask_stats.json").write_text(json.dumps({"mode": "post-hoc", "source_model": "trained"}))
    assert model_origin(tmp_path).startswith("filter-lookup of ") and model_origin(tmp_path).endswith("trained")
    (tmp_path / "mask_stats.json").write_text("{damaged")  # an unreadable record tells nothing
    assert model_origin(tmp_path).startswith("training with ")


def test_the_mask_record_prefers_the_training_summary_over_a_stale_mask_file(tmp_path):
    (tmp_path / "training_summary.json").write_text(json.dumps({"vocab_size": 10, "mask": None}))
    stale = {"threshold": 3, "vocab_size": 10, "tokens_masked": 8, "vocab_masked_fraction": 0.8}
    (tmp_path / "mask_stats.json").write_text(json.dumps(stale))
    np.save(tmp_path / "token_mask.npy", np.arange(10) >= 8)
    stats = read_mask_record(tmp_path)
    assert stats["tokens_masked"] == 0 and stats["threshold"] is None and stats["vocab_size"] == 10
    (tmp_path / "mask_stats.json").unlink()  # the mask file alone disagrees with the summary too
    assert read_mask_record(tmp_path)["tokens_masked"] == 0

    record = {"threshold": 2, "vocab_size": 10, "tokens_masked": 4, "vocab_masked_fraction": 0.4}
    (tmp_path / "training_summary.json").write_text(json.dumps({"vocab_size": 10, "mask": record}))
    (tmp_path / "mask_stats.json").write_text(json.dumps(stale))
    assert read_mask_record(tmp_path)["tokens_masked"] == 4 and read_mask_record(tmp_path)["threshold"] == 2
    agreeing = dict(record, occurrences_masked_fraction=0.01)
    (tmp_path / "mask_stats.json").write_text(json.dumps(agreeing))
    assert read_mask_record(tmp_path) == agreeing

    # filter-lookup masks a trained model afterwards and copies its summary: the post-hoc record is the truth
    post_hoc = dict(stale, mode="post-hoc")
    (tmp_path / "mask_stats.json").write_text(json.dumps(post_hoc))
    assert read_mask_record(tmp_path) == post_hoc

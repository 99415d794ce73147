"""Parameter files: seed-compatible keys, overrides, path resolution and one-line errors."""

from pathlib import Path

import pytest
import yaml

from wldetect.config import load_model_config, load_training_config
from wldetect.errors import WLDetectError

ROOT = Path(__file__).resolve().parent.parent


def test_demo_parameter_files_load_and_resolve_against_the_repository_root():
    config = load_training_config(ROOT / "params" / "training" / "demo.yaml")
    assert config.model_config_path == ROOT / "params" / "models" / "gemma3-270m-demo.yaml"
    assert config.output.artifacts_dir == ROOT / "artifacts" / "demo"
    assert config.model.hidden_dim == 640 and config.model.model_specs[0].is_gguf
    assert config.evaluation.dataset == "pud"
    minilm = load_training_config(ROOT / "params" / "training" / "demo-minilm.yaml")
    assert minilm.model.hidden_dim == 384 and minilm.model.language_codes == config.model.language_codes
    assert len(config.model.language_codes) == 41
    assert config.model.language_codes[0] == "arb_Arab"  # ordered by index


def test_gemma_example_has_the_148_openlid_languages():
    config = load_training_config(ROOT / "params" / "training" / "gemma3-27b-openlid.yaml")
    assert config.model.n_languages == 148
    assert config.model.model_specs[0].hidden_dim == 5376
    assert config.dataset.name == "laurievb/OpenLID-v2"  # a hub id stays a hub id


def test_num_epochs_is_accepted_as_the_seed_spells_it(tiny_training_config):
    data = yaml.safe_load(tiny_training_config.read_text())
    data["training"]["num_epochs"] = data["training"].pop("epochs") + 3
    tiny_training_config.write_text(yaml.safe_dump(data))
    assert load_training_config(tiny_training_config).training.epochs == 5


def test_overrides_set_dotted_keys(tiny_training_config):
    config = load_training_config(tiny_training_config, {"training.batch_size": 7, "dataset.min_samples_per_language": 2})
    assert config.training.batch_size == 7
    assert config.dataset.min_samples_per_language == 2


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["training"].update(batch_sise=3), "training.batch_sise: unknown key"),
        (lambda d: d["training"].update(batch_size="many"), "training.batch_size: Input should be a valid integer"),
        (lambda d: d["training"].update(learning_rate=-1), "training.learning_rate: Input should be greater than 0"),
        (lambda d: d.pop("dataset"), "dataset: required key is missing"),
        (lambda d: d.update(model_config_path="params/models/absent.yaml"), "model_config_path: file not found"),
        (lambda d: d["dataset"].update(name="data/absent.jsonl"), "dataset.name: no such file or directory"),
        (lambda d: d["training"].update(token_mask_path="absent.npy"), "training.token_mask_path: file not found"),
        (lambda d: d["training"].update(epochs=1, num_epochs=2), "give 'epochs' or 'num_epochs', not both"),
    ],
)
def test_bad_training_parameters_name_the_file_and_key(tiny_training_config, change, message):
    data = yaml.safe_load(tiny_training_config.read_text())
    change(data)
    _write(tiny_training_config, data)
    with pytest.raises(WLDetectError) as caught:
        load_training_config(tiny_training_config)
    text = str(caught.value)
    assert message in text and str(tiny_training_config) in text and "\n" not in text


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["languages"].update(eng_Latn=5), "languages: Value error, language indices must be 0..2, each once"),
        (lambda d: d["inference"].update(pooling="mean"), "inference.pooling: Input should be 'logsumexp', 'max' or 'average'"),
        (lambda d: d.update(models=[d["model"]]), "give exactly one of 'model'"),
        (lambda d: d["model"].pop("hidden_dim"), "model.hidden_dim: required key is missing"),
    ],
)
def test_bad_model_parameters_name_the_key(tmp_path, tiny_training_config, change, message):
    path = tiny_training_config.parent.parent / "models" / "tiny.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    _write(path, data)
    with pytest.raises(WLDetectError, match="tiny.yaml") as caught:
        load_model_config(path)
    assert message in str(caught.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(WLDetectError, match="parameter file not found"):
        load_training_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("training: [unclosed\n")
    with pytest.raises(WLDetectError, match=r"bad.yaml: not valid YAML \(line"):
        load_training_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(WLDetectError, match="expected a mapping"):
        load_training_config(tmp_path / "list.yaml")
